"""Rows stream: from step to step, and in the CLI from chunk to chunk (issue: engine session).

A slow call holds back its own row only. The server records when each request arrives,
and these tests check that the rows behind a slow one went on before its reply came back.
"""

import json
import subprocess
import threading
import time

import polars as pl

from promptflow_dsl import Model, explode, self_instruct, text_generation
from promptflow_dsl.testing import LoopbackServer, Reply

from ._cli import promptflow_run, run_env

SLOW_S = 1.5


class Arrivals:
    """A responder that notes when each request arrived and slows those that name SLOW."""

    def __init__(self, slow_marker: str = "SLOW") -> None:
        self.times: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._marker = slow_marker

    def __call__(self, request):
        with self._lock:
            self.times.append((time.monotonic(), request.text))
        return Reply(delay=SLOW_S) if self._marker in request.text else None

    def first(self, predicate) -> float:
        return min(t for t, text in self.times if predicate(text))


def model_at(server):
    return Model("openai/loopback", api_base=server.api_base, api_key="sk-test")


def test_a_row_goes_on_to_its_next_step_while_another_row_waits_for_its_first_call():
    documents = [f"Document {i}: rivers, glaciers and deltas." for i in range(6)]
    documents[0] = "Document SLOW: rivers, glaciers and deltas."
    recipe = (
        self_instruct.step(num_instructions=2)
        >> explode("instructions", into="instruction")
        >> text_generation.step()
    )
    arrivals = Arrivals()
    with LoopbackServer(responder=arrivals) as server:
        out = recipe.run(pl.DataFrame({"input": documents}), model=model_at(server), cache=False)
    slow_sent = arrivals.first(lambda text: "SLOW" in text)
    second_step = arrivals.first(lambda text: "Document" not in text)
    assert second_step < slow_sent + SLOW_S - 0.5  # long before the slow reply came back
    assert out["error"].null_count() == out.height
    assert out["input"].to_list() == [d for d in documents for _ in range(2)]  # input order


def test_streamed_rows_give_the_same_frame_as_rows_one_at_a_time(tmp_path):
    """Any interleaving gives the output of a run with one call at a time, row for row."""
    documents = [f"Document {i}: {'alpha ' * (i % 4)}rivers." for i in range(24)]
    recipe = (
        self_instruct.step(num_instructions=3)
        >> explode("instructions", into="instruction")
        >> text_generation.step()
    )
    frame = pl.DataFrame({"id": list(range(24)), "input": documents})
    with LoopbackServer(latency=lambda rng: rng.uniform(0.0, 0.05), seed=7) as server:
        streamed = recipe.run(frame, model=model_at(server), cache=False, max_concurrency=8)
        serial = recipe.run(frame, model=model_at(server), cache=False, max_concurrency=1)
    assert streamed.drop("usage").equals(serial.drop("usage"))


def test_the_cli_starts_the_next_chunk_while_a_slow_row_of_this_one_finishes(tmp_path):
    recipe = tmp_path / "recipe.py"
    recipe.write_text(
        "from promptflow_dsl import text_generation\nrecipe = text_generation.step()\n"
    )
    questions = [f"Question {i}?" for i in range(8)]
    questions[0] = "Question SLOW?"
    source = tmp_path / "q.jsonl"
    source.write_text("".join(json.dumps({"instruction": q}) + "\n" for q in questions))
    output = tmp_path / "out.jsonl"
    arrivals = Arrivals()
    with LoopbackServer(responder=arrivals) as server:
        args = promptflow_run(
            recipe, source, output, "--no-progress", "--chunk-size", "2", server=server
        )
        done = subprocess.run(args, env=run_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    slow_sent = arrivals.first(lambda text: "SLOW" in text)
    last_chunk = arrivals.first(lambda text: "Question 7?" in text)
    assert last_chunk < slow_sent + SLOW_S - 0.5  # chunk 3 began before chunk 0 was done
    out = pl.read_ndjson(output)
    assert out["instruction"].to_list() == questions


def test_a_budget_spent_mid_recipe_leaves_complete_rows_not_only_first_steps():
    """Rows finish one by one, so a budget bought whole rows (before, the first step used
    it all on every row and no row was complete)."""
    documents = [f"Document {i}: rivers, glaciers and deltas." for i in range(40)]
    recipe = (
        self_instruct.step(num_instructions=2)
        >> explode("instructions", into="instruction")
        >> text_generation.step()
    )
    with LoopbackServer() as server:
        model = Model("openai/gpt-4o-mini", api_base=server.api_base, api_key="sk-test")
        result = recipe.execute(
            pl.DataFrame({"input": documents}),
            model=model,
            cache=False,
            max_concurrency=2,
            max_cost_usd=0.001,
        )
    complete = result.frame.filter(pl.col("error").is_null())
    assert "max_cost_usd" in result.summary.stopped
    assert complete.height >= 10
    assert complete["generation"].null_count() == 0
