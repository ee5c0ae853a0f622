"""A killed worker loses no row, and no finished call is paid for twice: not by the
worker that Ray restarts, nor by a run started again after the driver was killed."""

import threading
import time
from collections import Counter

import polars as pl
import pytest

ray = pytest.importorskip("ray")

from promptflow_dsl import Recipe, text_generation  # noqa: E402
from promptflow_dsl._ray._run import ClusterRun  # noqa: E402
from promptflow_dsl.testing import LoopbackServer  # noqa: E402

from ._helpers import Arrivals, collect, model_at  # noqa: E402

QUESTIONS = pl.DataFrame({"instruction": [f"Question {i} about glaciers?" for i in range(60)]})
IN_FLIGHT = 4


def wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_killed_worker_loses_no_row_and_a_rerun_pays_for_nothing(ray_cluster, tmp_path):
    cache = tmp_path / "cache.sqlite"
    arrivals = Arrivals()
    with LoopbackServer(latency=0.4, responder=arrivals) as server:
        model = model_at(server)
        run = ClusterRun(
            Recipe((text_generation.step(),)),
            model=model,
            cache=cache,
            max_concurrency=IN_FLIGHT,
            workers=2,
        )
        dataset = run.apply(ray.data.from_arrow(QUESTIONS.to_arrow()))
        result = {}
        thread = threading.Thread(target=lambda: result.update(out=collect(dataset)))
        thread.start()
        wait_for(lambda: len(arrivals.times) >= 24)  # both workers well into their batches
        victim = ray.get(run.coordinator.worker_handles.remote())[0]
        ray.kill(victim, no_restart=False)
        thread.join(timeout=300)
        out = result["out"]
        assert ray.get(run.coordinator.restarts.remote()) == 1
        first_run = server.stats.requests
        again = collect(
            text_generation.step().run(
                ray.data.from_arrow(QUESTIONS.to_arrow()),
                model=model,
                cache=cache,
                max_concurrency=IN_FLIGHT,
                workers=2,
            )
        )
        assert server.stats.requests == first_run  # the re-run: every call from the cache
    assert sorted(out["instruction"]) == sorted(QUESTIONS["instruction"])
    assert out["error"].is_null().all() and out["generation"].is_not_null().all()
    # The restarted worker ran its unfinished batches again: only the calls it had in
    # flight when it died were sent twice; the ones it had finished came from the cache.
    repeated = [text for text, count in Counter(arrivals.texts).items() if count > 1]
    assert len(repeated) <= IN_FLIGHT, len(repeated)
    assert first_run <= 60 + IN_FLIGHT
    assert again["usage"].struct.field("cache_hit").all()
    assert sorted(again.select("instruction", "generation").iter_rows()) == sorted(
        out.select("instruction", "generation").iter_rows()
    )
