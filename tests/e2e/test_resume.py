"""A run killed with SIGKILL halfway resumes: no finished call is made again, same output."""

import collections
import json
import signal
import subprocess
import time

import polars as pl

from promptflow_dsl.testing import LoopbackServer

from ._cli import promptflow_run, run_env

RECIPE = "from promptflow_dsl import text_generation\nrecipe = text_generation.step()\n"


def command(recipe, source, output, server, *extra):
    options = ("--max-concurrency", "4", "--chunk-size", "30", "--no-progress", *extra)
    return promptflow_run(recipe, source, output, *options, server=server)


def test_kill_and_resume(tmp_path):
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    source = tmp_path / "questions.jsonl"
    source.write_text(
        "".join(json.dumps({"instruction": f"Question number {i}?"}) + "\n" for i in range(120))
    )
    env = run_env(tmp_path)
    with LoopbackServer(latency=0.04) as server:
        output = tmp_path / "out.parquet"
        run = subprocess.Popen(
            command(recipe, source, output, server), env=env, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 120
        while server.stats.requests < 50 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.01)
        run.send_signal(signal.SIGKILL)
        run.wait()
        before = server.stats.requests
        assert 50 <= before < 120, "the run was not killed halfway"
        assert (tmp_path / "out.parquet.parts").is_dir() and not output.exists()

        resumed = subprocess.run(
            command(recipe, source, output, server), env=env, capture_output=True, text=True
        )
        assert resumed.returncode == 0, resumed.stderr
        billed = server.stats.requests  # what a billing server counts over both runs
        texts = collections.Counter(r.text for r in server.requests)
        repeated = sum(n - 1 for n in texts.values())
        assert (
            len(texts) == 120 and repeated <= 4
        )  # only calls in flight at the kill were made again

        fresh = tmp_path / "fresh.parquet"
        straight = subprocess.run(
            command(recipe, source, fresh, server, "--no-cache"),
            env=env,
            capture_output=True,
            text=True,
        )
        assert straight.returncode == 0, straight.stderr
    resumed_frame, fresh_frame = pl.read_parquet(output), pl.read_parquet(fresh)
    assert resumed_frame.drop("usage").equals(fresh_frame.drop("usage"))
    assert resumed_frame.height == 120 and resumed_frame["error"].is_null().all()
    assert not (tmp_path / "out.parquet.parts").exists()
    # The output's provenance and the summary count every HTTP attempt of both runs,
    # those in flight at the kill included: what the provider bills.
    totals = json.loads(pl.read_parquet_metadata(output)["promptflow_dsl"])["totals"]
    summary_calls = int(resumed.stderr.split(" calls, ")[0].rsplit(" ", 1)[-1])
    # An attempt is counted as it is sent: one in flight at the kill may not have reached
    # the server, so the count may exceed the server's by at most the in-flight limit.
    assert totals["calls"] == summary_calls and billed <= totals["calls"] <= billed + 4
