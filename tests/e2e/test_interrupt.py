"""Ctrl-C stops a run at once, and cancelled calls leave no limiter state behind."""

import asyncio
import json
import signal
import subprocess
import time

from promptflow_dsl import Model, text_generation
from promptflow_dsl._engine._portal import run_sync
from promptflow_dsl.testing import LoopbackServer, Reply

from ._cli import promptflow_run, run_env


def test_ctrl_c_stops_issuing_calls_and_says_how_to_resume(tmp_path):
    recipe = tmp_path / "recipe.py"
    recipe.write_text(
        "from promptflow_dsl import text_generation\nrecipe = text_generation.step()\n"
    )
    source = tmp_path / "q.jsonl"
    source.write_text("".join(json.dumps({"instruction": f"Q {i}?"}) + "\n" for i in range(400)))
    env = run_env(tmp_path)
    with LoopbackServer(latency=0.2) as server:
        output = tmp_path / "out.parquet"
        options = ("--max-concurrency", "4", "--chunk-size", "20", "--no-progress")
        run = subprocess.Popen(
            promptflow_run(recipe, source, output, *options, server=server),
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while server.stats.requests < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        run.send_signal(signal.SIGINT)
        at_interrupt = server.stats.requests
        interrupted = time.monotonic()
        code = run.wait(timeout=30)
        stopped_in = time.monotonic() - interrupted
        time.sleep(0.5)
        after = server.stats.requests - at_interrupt
    stderr = run.stderr.read()
    assert code == 130, stderr
    assert stderr.strip().splitlines()[-1].endswith("run the same command again to resume")
    assert "Traceback" not in stderr and "Aborted" not in stderr
    assert after <= 4  # at most what was in flight
    assert stopped_in < 20  # a hang guard: how many calls were issued is the measure
    assert list((tmp_path / "out.parquet.parts").glob("part-*"))  # finished chunks are kept


def test_cancelled_calls_waiting_on_a_paused_model_leave_no_slot_behind():
    async def scenario(server):
        # rpm=60 spaces requests a second apart: the calls after the first wait their turn.
        model = Model("openai/loopback", api_base=server.api_base, api_key="sk-test", rpm=60)
        calls = [
            asyncio.ensure_future(text_generation.acall(f"Q {i}?", model=model, cache=False))
            for i in range(6)
        ]
        await asyncio.sleep(0.3)
        for call in calls:
            call.cancel()  # five of them while they wait for their turn
        await asyncio.gather(*calls, return_exceptions=True)
        # A 429 now shrinks the model's window; leaked slots would block every later call.
        server.script([Reply(status=429, headers={"retry-after": "0"})])
        return await asyncio.wait_for(
            text_generation.acall("After?", model=model, cache=False), timeout=15
        )

    with LoopbackServer() as server:
        result = run_sync(
            scenario(server)
        )  # the loop sync calls share: LiteLLM's clients live there
    assert result.generation
