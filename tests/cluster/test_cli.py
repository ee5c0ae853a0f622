"""``promptflow run --engine ray``: Parquet shards in and out, provenance beside them, and
a driver killed with SIGKILL whose re-run repeats no finished call."""

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

ray = pytest.importorskip("ray")

from promptflow_dsl.testing import LoopbackServer  # noqa: E402

from ._helpers import Arrivals  # noqa: E402

ROOT = Path(__file__).parents[2]
RECIPE = ROOT / "recipes" / "self_instruct.py"


def promptflow(*arguments: str, server: LoopbackServer, tmp_path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "promptflow_dsl",
        "run",
        *arguments,
        "--engine",
        "ray",
        "--address",
        ray.get_runtime_context().gcs_address,  # the tests' cluster: joined, not started
        "--model",
        "openai/loopback",
        "--api-base",
        server.api_base,
    ]


def environment(tmp_path: Path) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "PROMPTFLOW_CACHE_DIR": str(tmp_path / "cache"),
        "OPENAI_API_KEY": "sk-test",
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def test_the_bundled_recipe_writes_parquet_shards_and_their_provenance(ray_cluster, tmp_path):
    documents = pl.read_ndjson(ROOT / "recipes" / "data" / "documents.jsonl")
    shards = tmp_path / "documents"
    shards.mkdir()
    for index, part in enumerate(documents.iter_slices(3)):
        part.write_parquet(shards / f"part-{index}.parquet")
    output = tmp_path / "out" / "self_instruct"
    with LoopbackServer() as server:
        command = promptflow(
            str(RECIPE), "-i", str(shards), "-o", str(output), "--workers", "2",
            server=server, tmp_path=tmp_path,
        )  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=environment(tmp_path))
        assert done.returncode == 0, done.stderr
        calls = server.stats.requests
    written = pl.read_parquet(output / "*.parquet")
    assert written.height == 3 * documents.height == 24 and calls == 32
    assert set(written["input"]) == set(documents["input"])
    assert written["error"].is_null().all() and written["generation"].is_not_null().all()
    assert "8 rows in, 24 out, 0 failed; 32 calls" in done.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "promptflow_dsl", "show", str(output)],
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(shown.stdout)
    assert record["engine"]["name"] == "ray" and record["engine"]["workers"] == 2
    assert record["totals"]["calls"] == 32 and record["totals"]["rows_out"] == 24


def test_an_output_folder_that_holds_other_files_is_refused(ray_cluster, tmp_path):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "notes.txt").write_text("mine")
    with LoopbackServer() as server:
        command = promptflow(
            str(RECIPE), "-i", str(ROOT / "recipes" / "data" / "documents.jsonl"),
            "-o", str(tmp_path / "project"), server=server, tmp_path=tmp_path,
        )  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=environment(tmp_path))
        assert server.stats.requests == 0
    assert done.returncode == 1 and "holds files that are not Parquet shards" in done.stderr
    assert (tmp_path / "project" / "notes.txt").read_text() == "mine"


def test_a_killed_driver_then_a_rerun_repeats_no_finished_call(ray_cluster, tmp_path):
    questions = pl.DataFrame({"input": [f"Document {i} on tides and moons." for i in range(48)]})
    questions.write_parquet(tmp_path / "docs.parquet")
    recipe = tmp_path / "one_step.py"
    recipe.write_text("from promptflow_dsl import self_instruct\nrecipe = self_instruct.step()\n")
    output = tmp_path / "out"
    arrivals = Arrivals()
    with LoopbackServer(latency=0.4, responder=arrivals) as server:
        command = promptflow(
            str(recipe), "-i", str(tmp_path / "docs.parquet"), "-o", str(output),
            "--workers", "2", "--max-concurrency", "4", server=server, tmp_path=tmp_path,
        )  # fmt: skip
        first = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment(tmp_path)
        )
        deadline = time.monotonic() + 180
        while len(arrivals.times) < 20 and first.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first.kill()  # SIGKILL: no cleanup runs, the workers it owned go with it
        first.wait()
        time.sleep(2)  # the killed driver's workers finish dying
        killed_at = len(arrivals.texts)
        done = subprocess.run(command, capture_output=True, text=True, env=environment(tmp_path))
        assert done.returncode == 0, done.stderr
    written = pl.read_parquet(output / "*.parquet")
    assert sorted(written["input"]) == sorted(questions["input"])
    assert written["error"].is_null().all()
    before, after = Counter(arrivals.texts[:killed_at]), Counter(arrivals.texts[killed_at:])
    # Only the calls in flight when the driver died (2 workers x 4) are sent again.
    assert 20 <= killed_at < 48
    assert len(set(before) & set(after)) <= 8, len(set(before) & set(after))
    assert len(after) == 48 - len(before) + len(set(before) & set(after))


def test_a_run_that_stops_on_a_worker_says_why_in_one_line(ray_cluster, tmp_path):
    from promptflow_dsl.testing import Reply

    pl.DataFrame({"input": [f"Document {i}." for i in range(240)]}).write_parquet(
        tmp_path / "docs.parquet"
    )
    with LoopbackServer(responder=lambda request: Reply(status=401)) as server:
        command = promptflow(
            str(RECIPE), "-i", str(tmp_path / "docs.parquet"), "-o", str(tmp_path / "out"),
            "--workers", "1", server=server, tmp_path=tmp_path,
        )  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=environment(tmp_path))
        calls = server.stats.requests
    # The worker's RunAbortedError reaches the driver through the run's coordinator (Ray
    # passes on only the text of a worker's error) and is printed as itself, once the
    # early-stop window is full: the batches in flight finish failing, the rest never start.
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: stopped early:") and "refused the API key" in last
    assert calls < 240 / 2
    assert not (tmp_path / "out.meta.json").exists()
