"""Nothing lost, nothing doubled: one writer per output, samples, re-asks, empty results,
atomic outputs and honest accounting, through the CLI and the API over real HTTP."""

import itertools
import json
import re
import resource
import signal
import subprocess
import time

import polars as pl
import pytest

from promptflow_dsl import Model, RetryPolicy, explode, self_instruct, text_generation
from promptflow_dsl.testing import Faults, LoopbackServer, Reply

from ._cli import promptflow_run, run_env

QUICK = RetryPolicy(max_attempts=6, base_delay_s=0.01, max_delay_s=0.2)
TEXT_GENERATION = "from promptflow_dsl import text_generation\nrecipe = text_generation.step()\n"


def model_at(server, **options):
    return Model("openai/loopback", api_base=server.api_base, api_key="sk-test", **options)


def cli(recipe, source, output, server, *extra):
    return promptflow_run(recipe, source, output, "--no-progress", *extra, server=server)


def write_questions(path, count, *, same=False):
    lines = (
        json.dumps({"instruction": "Name a river." if same else f"Q {i}?"}) for i in range(count)
    )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def env(tmp_path):
    return run_env(tmp_path)


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


# 1. One run at a time holds an output.


def test_a_second_run_on_the_same_output_refuses_at_once_naming_the_holder(tmp_path, env):
    recipe = tmp_path / "recipe.py"
    recipe.write_text(TEXT_GENERATION)
    source = write_questions(tmp_path / "q.jsonl", 40)
    output = tmp_path / "out.parquet"
    with LoopbackServer(latency=0.1) as server:
        first = subprocess.Popen(
            cli(recipe, source, output, server, "--max-concurrency", "2", "--chunk-size", "10"),
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: server.stats.requests >= 4)
        began = time.monotonic()
        second = subprocess.run(
            cli(recipe, source, output, server, "--set", "text_generation.model.temperature=0.5"),
            env=env,
            capture_output=True,
            text=True,
        )
        refused_in = time.monotonic() - began
        assert first.wait(timeout=120) == 0, first.stderr.read()
    assert second.returncode != 0 and "Traceback" not in second.stderr
    line = second.stderr.strip().splitlines()[-1]
    assert "being written by another run" in line and f"pid {first.pid}" in line
    assert refused_in < 10  # at once, not after waiting for the first run
    out = pl.read_parquet(output)
    assert out.height == 40 and out["error"].is_null().all()
    assert not any(
        r.body.get("temperature") == 0.5 for r in server.requests
    )  # the second never called
    assert not list(tmp_path.glob(".out.parquet*"))  # no lock left behind


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, env):
    recipe = tmp_path / "recipe.py"
    recipe.write_text(TEXT_GENERATION)
    source = write_questions(tmp_path / "q.jsonl", 30)
    output = tmp_path / "out.parquet"
    with LoopbackServer(latency=0.1) as server:
        args = cli(recipe, source, output, server, "--max-concurrency", "2", "--chunk-size", "5")
        run = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
        wait_for(lambda: len(list((tmp_path / "out.parquet.parts").glob("part-*"))) >= 1)
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert (tmp_path / ".out.parquet.lock").exists()
        resumed = subprocess.run(args, env=env, capture_output=True, text=True)
        other = subprocess.run(
            cli(recipe, source, output, server, "--chunk-size", "7"),
            env=env,
            capture_output=True,
            text=True,
        )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming the output of a run that stopped (pid {run.pid}" in resumed.stderr
    assert re.search(r"resuming: [1-5] of 6 chunks done, \d+ calls made before", resumed.stderr)
    assert pl.read_parquet(output).height == 30
    assert other.returncode == 0 and "starting over" not in other.stderr  # a finished output


# 2. Samples are numbered over the whole input, whatever the chunk size, across resumes.


def distinct_server():
    """A server whose every reply differs, as a model's samples at temperature > 0 do."""
    counter = itertools.count()
    return LoopbackServer(responder=lambda request: f"Answer number {next(counter)}.")


@pytest.mark.parametrize("chunk_size", [100, 10, 1])
def test_identical_prompts_are_distinct_samples_whatever_the_chunk_size(tmp_path, env, chunk_size):
    recipe = tmp_path / "recipe.py"
    recipe.write_text(TEXT_GENERATION)
    source = write_questions(tmp_path / "q.jsonl", 30, same=True)
    output = tmp_path / "out.parquet"
    with distinct_server() as server:
        done = subprocess.run(
            cli(recipe, source, output, server, "--chunk-size", str(chunk_size)),
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert server.stats.requests == 30
    assert pl.read_parquet(output)["generation"].n_unique() == 30


def test_sample_numbering_survives_kill_and_resume(tmp_path, env):
    recipe = tmp_path / "recipe.py"
    recipe.write_text(TEXT_GENERATION)
    source = write_questions(tmp_path / "q.jsonl", 60, same=True)
    output = tmp_path / "out.parquet"
    counter = itertools.count()

    def slow_distinct(request):
        return Reply(content=f"Answer number {next(counter)}.", delay=0.05)

    with LoopbackServer(responder=slow_distinct) as server:
        args = cli(recipe, source, output, server, "--chunk-size", "10", "--max-concurrency", "2")
        run = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
        wait_for(lambda: len(list((tmp_path / "out.parquet.parts").glob("part-*"))) >= 2)
        run.send_signal(signal.SIGKILL)
        run.wait()
        resumed = subprocess.run(args, env=env, capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr
    out = pl.read_parquet(output)
    assert out.height == 60 and out["generation"].n_unique() == 60


def test_the_api_numbers_samples_over_the_whole_frame(tmp_path):
    frame = pl.DataFrame({"instruction": ["Name a river."] * 12})
    with distinct_server() as server:
        first = text_generation.step().run(
            frame, model=model_at(server), cache=tmp_path / "c.sqlite"
        )
        again = text_generation.step().run(
            frame, model=model_at(server), cache=tmp_path / "c.sqlite"
        )
        assert server.stats.requests == 12  # the second run is served from the cache
    assert first["generation"].n_unique() == 12 and again.drop("usage").equals(first.drop("usage"))


# 3. Transient errors during a validation re-ask are retried; the error type is the real one.


def test_a_429_during_a_reask_is_retried_not_a_validation_failure():
    with LoopbackServer() as server:
        server.script(
            [
                {"instructions": "not a list"},  # fails validation: Instructor re-asks
                Reply(status=429, headers={"retry-after": "0"}),  # the re-ask is throttled
                Reply(status=503),
                {"instructions": ["Explain tides."]},
            ]
        )
        result = self_instruct.step().execute(
            pl.DataFrame({"input": ["Tides."]}), model=model_at(server), cache=False, retry=QUICK
        )
        requests = server.stats.requests
    row = result.frame.row(0, named=True)
    assert row["error"] is None, row["error"]
    assert row["instructions"] == ["Explain tides."]
    assert row["usage"]["attempts"] == requests == 4
    assert result.summary.calls == 4


def test_a_failure_during_a_reask_is_recorded_as_what_it_was():
    with LoopbackServer() as server:
        server.script([{"instructions": "not a list"}, Reply(status=401)])
        result = self_instruct.step().execute(
            pl.DataFrame({"input": ["Tides."]}), model=model_at(server), cache=False, retry=QUICK
        )
    error = result.frame["error"][0]
    assert error["type"] == "ProviderError" and "Incorrect API key" in error["message"]
    assert error["attempts"] == 2


# 4. An empty result is a failed row, never a vanished document.


def test_an_empty_instruction_list_is_a_counted_failure_not_a_lost_document():
    recipe = self_instruct.step() >> explode("instructions", into="instruction")
    frame = pl.DataFrame({"input": ["Rivers.", "Empty.", "Tides."]})
    empty = {"instructions": []}

    def answer(request):
        return empty if "Empty." in request.text else {"instructions": ["Q1?", "Q2?"]}

    with LoopbackServer(responder=answer) as server:
        result = recipe.execute(
            frame, model=model_at(server, max_validation_retries=1), cache=False
        )
    out = result.frame
    assert set(out["input"]) == {"Rivers.", "Empty.", "Tides."}
    failed = out.filter(pl.col("error").is_not_null())
    assert failed["input"].to_list() == ["Empty."] and result.summary.failures == 1
    assert failed["error"][0]["type"] == "ValidationExhaustedError"


def test_explode_keeps_a_technique_row_whose_list_is_empty_as_a_failure():
    frame = pl.DataFrame({"input": ["a", "b"], "instructions": [["x"], []]})
    with_errors = text_generation.step().contract  # any technique's bookkeeping columns
    assert "error" in with_errors.adds
    from promptflow_dsl._recipe._llm_step import error_dtype

    frame = frame.with_columns(pl.Series("error", [None, None], dtype=error_dtype()))
    out = explode("instructions", into="instruction").run(frame)
    assert out["input"].to_list() == ["a", "b"]
    assert out["error"][1]["type"] == "EmptyResult"


# 5. A failed run never destroys an earlier good output.


def _limit_file_size(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_failed_final_write_keeps_the_earlier_output_and_the_parts(tmp_path, env):
    recipe = tmp_path / "recipe.py"
    recipe.write_text(TEXT_GENERATION)
    source = write_questions(tmp_path / "q.jsonl", 300)
    output = tmp_path / "out.jsonl"
    base = promptflow_run(recipe, source, output)
    good = subprocess.run([*base, "--limit", "100"], env=env, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    earlier = output.read_bytes()
    assert 20_000 < len(earlier) < 60_000
    failed = subprocess.run(
        [*base, "--chunk-size", "20"],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size(60_000),
    )
    assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert "run the same command again to resume" in failed.stderr
    assert output.read_bytes() == earlier  # the earlier good output is untouched
    assert (tmp_path / "out.jsonl.parts").is_dir()  # what was made is kept for the next run
    again = subprocess.run([*base, "--chunk-size", "20"], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert len(output.read_text().splitlines()) == 300


# 13. Calls and cost: every HTTP attempt, as a billing server counts them.


def test_a_run_where_every_row_is_unauthorised_counts_its_calls():
    frame = pl.DataFrame({"instruction": [f"Q {i}?" for i in range(5)]})
    with LoopbackServer(responder=lambda request: Reply(status=401)) as server:
        result = text_generation.step().execute(
            frame, model=model_at(server), cache=False, max_concurrency=1
        )
        assert result.summary.calls == server.stats.requests == 5


def test_calls_under_faults_and_reasks_agree_with_the_server():
    seen = set()

    def first_invalid(request):
        key = request.body["messages"][-1]["content"][:200]
        if key in seen:
            return None  # the default reply: schema-valid
        seen.add(key)
        return {"instructions": "not a list"}

    frame = pl.DataFrame({"input": [f"Document {i}." for i in range(40)]})
    faults = Faults(rate_429=0.2, retry_after=0.01, rate_500=0.1)
    with LoopbackServer(faults=faults, seed=3, responder=first_invalid) as server:
        result = self_instruct.step().execute(
            frame, model=model_at(server), cache=False, retry=QUICK, max_concurrency=8
        )
        billed = server.stats.requests
    assert result.summary.calls == billed
    assert result.frame["usage"].struct.field("attempts").sum() == billed
    assert result.summary.failures == 0


def test_a_resumed_run_keeps_to_the_budget_it_had_spent(tmp_path, env):
    recipe = tmp_path / "recipe.py"
    recipe.write_text(TEXT_GENERATION)
    source = write_questions(tmp_path / "q.jsonl", 300)
    output = tmp_path / "out.parquet"
    budget = 0.0008
    with LoopbackServer(latency=0.05) as server:
        args = cli(
            recipe, source, output, server, "--max-cost-usd", str(budget), "--chunk-size", "10"
        )
        args[args.index("openai/loopback")] = "openai/gpt-4o-mini"  # a model with a price
        args += ["--max-concurrency", "2"]
        run = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
        wait_for(lambda: server.stats.requests >= 15)
        run.send_signal(signal.SIGKILL)
        run.wait()
        resumed = subprocess.run(args, env=env, capture_output=True, text=True)
        billed = server.stats.requests
    assert resumed.returncode == 0, resumed.stderr
    totals = json.loads(pl.read_parquet_metadata(output)["promptflow_dsl"])["totals"]
    per_call = totals["cost_usd"] / totals["calls"]
    # Counted when sent: an attempt in flight at the kill may not have reached the server.
    assert billed <= totals["calls"] <= billed + 2
    assert budget <= totals["cost_usd"] <= budget + 3 * per_call  # 2 in flight at most
    assert "max_cost_usd" in resumed.stderr
