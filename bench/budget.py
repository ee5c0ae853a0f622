"""Does ``max_cost_usd`` hold? True spend against the budget, as the server bills it.

    python bench/budget.py

The loopback server reports usage in every 200 reply and adds it up (what a provider
bills); the true spend is that usage at gpt-4o-mini's price in LiteLLM's local map.
The budget is checked before every HTTP attempt, so the spend may pass it only by what
was already in flight: ``max_concurrency`` calls (4 here), and after a SIGKILL also the
calls in flight at the kill, which the server billed but the killed run never heard of.
Each line prints the budget, the true spend, the overshoot in calls of the mean price,
and how many rows came out complete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
import polars as pl  # noqa: E402

from promptflow_dsl import (  # noqa: E402
    Model,
    Recipe,
    evol_instruct,
    explode,
    self_instruct,
    text_generation,
)
from promptflow_dsl.testing import LoopbackServer  # noqa: E402

MODEL = "openai/gpt-4o-mini"
LIMIT = 4
PRICE = litellm.model_cost["gpt-4o-mini"]


def true_spend(server: LoopbackServer) -> float:
    stats = server.stats
    return (
        stats.billed_input_tokens * PRICE["input_cost_per_token"]
        + stats.billed_output_tokens * PRICE["output_cost_per_token"]
    )


def report(name: str, budget: float, spend: float, calls: int, complete: int, rows: int) -> None:
    over = (spend - budget) / (spend / max(1, calls))  # in calls of the mean price
    print(
        f"  {name:52} budget ${budget:.5f}, spent ${spend:.5f} "
        f"({100 * (spend - budget) / budget:+.1f}%, {over:.1f} calls' worth); "
        f"{complete}/{rows} rows complete"
    )


def in_process(name: str, recipe: Recipe, frame: pl.DataFrame, budget: float) -> None:
    with LoopbackServer(latency=0.02) as server:
        model = Model(MODEL, api_base=server.api_base, api_key="sk-bench")
        result = recipe.execute(
            frame,
            model=model,
            max_concurrency=LIMIT,
            cache=False,
            max_cost_usd=budget,
            progress=False,
        )
        spend, calls = true_spend(server), server.stats.requests
    complete = result.frame.filter(pl.col("error").is_null()).height
    report(name, budget, spend, calls, complete, result.frame.height)


def kill_and_resume(budget: float) -> None:
    with tempfile.TemporaryDirectory() as folder, LoopbackServer(latency=0.05) as server:
        scratch = Path(folder)
        recipe = scratch / "recipe.py"
        recipe.write_text(
            "from promptflow_dsl import text_generation\nrecipe = text_generation.step()\n"
        )
        source = scratch / "q.jsonl"
        source.write_text(
            "".join(json.dumps({"instruction": f"Q {i}?"}) + "\n" for i in range(400))
        )
        output = scratch / "out.parquet"
        command = [
            sys.executable, "-m", "promptflow_dsl", "run", str(recipe), "-i", str(source),
            "-o", str(output), "--model", MODEL, "--api-base", server.api_base,
            "--max-cost-usd", str(budget), "--chunk-size", "10", "--max-concurrency",
            str(LIMIT), "--no-progress",
        ]  # fmt: skip
        env = {**os.environ, "PROMPTFLOW_CACHE_DIR": str(scratch / "cache"),
               "OPENAI_API_KEY": "sk-bench"}  # fmt: skip
        run = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        while server.stats.requests < 30:
            time.sleep(0.01)
        run.send_signal(signal.SIGKILL)
        run.wait()
        subprocess.run(command, env=env, check=True, capture_output=True)
        spend, calls = true_spend(server), server.stats.requests
        out = pl.read_parquet(output)
    complete = out.filter(pl.col("error").is_null()).height
    report("text_generation, SIGKILL then resume (CLI)", budget, spend, calls, complete, out.height)


def main() -> None:
    questions = pl.DataFrame({"instruction": [f"Explain topic {i}." for i in range(300)]})
    documents = pl.DataFrame({"input": [f"Document {i}: rivers and deltas." for i in range(300)]})
    print(f"max_concurrency {LIMIT}, {MODEL} prices, loopback server")
    in_process("text_generation", Recipe((text_generation.step(),)), questions, 0.002)
    for eliminate in (False, True):
        evol = evol_instruct.step(num_evolutions=3, generate_answers=True, eliminate=eliminate)
        in_process(f"evol_instruct, 3 evolutions, answers, eliminate={eliminate}",
                   Recipe((evol,)), questions, 0.002)  # fmt: skip
    three_steps = (
        self_instruct.step(num_instructions=3)
        >> explode("instructions", into="instruction")
        >> text_generation.step()
    )
    in_process("self_instruct >> explode >> text_generation", three_steps, documents, 0.002)
    kill_and_resume(0.001)


if __name__ == "__main__":
    main()
