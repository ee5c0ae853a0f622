"""Limits and budget hold for the whole run, whatever the number of workers: the server
sees the rate, the pauses and the spending of one client."""

import polars as pl
import pytest

ray = pytest.importorskip("ray")

from promptflow_dsl import RetryPolicy, text_generation  # noqa: E402
from promptflow_dsl.testing import LoopbackServer, Reply  # noqa: E402

from ._helpers import Arrivals, collect, model_at  # noqa: E402


def questions(count: int, topic: str = "rivers") -> "ray.data.Dataset":
    return ray.data.from_items(
        [{"instruction": f"Question {i} about {topic}?"} for i in range(count)]
    )


def test_rpm_holds_across_workers(ray_cluster):
    arrivals = Arrivals()
    with LoopbackServer(latency=0.05, responder=arrivals) as server:
        out = collect(
            text_generation.step().run(
                questions(24),
                model=model_at(server, rpm=120),
                cache=False,
                max_concurrency=4,
                workers=2,
            )
        )
    assert out.height == 24 and len(arrivals.times) == 24 and out["error"].is_null().all()
    # 120 rpm is a turn every 0.5 s for the whole run: any 5 s hold at most 11 requests,
    # 12 as the server sees them (a worker's first call sets out late, so the next one
    # arrives close behind it). Two workers each with a limit of its own would send 21.
    busiest = max(
        sum(t <= start + 5.0 for t in arrivals.times[i:]) for i, start in enumerate(arrivals.times)
    )
    assert busiest <= 12, arrivals.times
    span = arrivals.times[-1] - arrivals.times[0]
    assert span >= 23 * 0.5 - 1.0, span


def test_a_429_seen_by_one_worker_pauses_them_all(ray_cluster):
    # The first request gets a 429 asking for 3 s; every worker waits it out.
    arrivals = Arrivals(first=[Reply(status=429, headers={"Retry-After": "3"})])
    with LoopbackServer(latency=0.05, responder=arrivals) as server:
        out = collect(
            text_generation.step().run(
                questions(40),
                model=model_at(server),
                cache=False,
                max_concurrency=2,
                workers=2,
                retry=RetryPolicy(max_attempts=3),
            )
        )
    assert out.height == 40 and out["error"].is_null().all()
    limited = arrivals.times[0]
    # Requests already on their way when the 429 was sent may still arrive (the other
    # worker hears of the pause within 0.1 s, and a loaded machine can hold a request that
    # already had its turn for a while before it is sent); after that, nothing until the
    # pause is over. Without sharing, the other worker goes on sending several a second.
    during = [t - limited for t in arrivals.times if 1.0 < t - limited < 2.9]
    assert during == [], during
    assert len(arrivals.times) == 41


def test_a_budget_holds_across_workers(ray_cluster):
    frame = pl.DataFrame({"instruction": [f"Question {i} about deltas?" for i in range(80)]})
    with LoopbackServer(latency=0.1) as server:
        priced = model_at(server, "openai/gpt-4o-mini")
        # The price of one call, measured on one machine.
        one = text_generation.step().execute(frame.head(1), model=priced, cache=False)
        per_call = one.summary.cost_usd
        server.reset()
        budget = 12 * per_call
        out = collect(
            text_generation.step().run(
                ray.data.from_arrow(frame.to_arrow()),
                model=priced,
                cache=False,
                max_cost_usd=budget,
                max_concurrency=2,
                workers=2,
            )
        )
        calls = server.stats.requests
    spent = out["usage"].struct.field("cost_usd").fill_null(0).sum()
    done = out.filter(pl.col("error").is_null()).height
    refused = out.filter(pl.col("error").struct.field("type") == "BudgetExhaustedError").height
    assert out.height == 80 and done + refused == 80
    # Checked before every call against every worker's spending: past the budget, only
    # the calls in flight (2 workers x 2) finish. Two budgets of their own would spend 24.
    assert budget <= spent <= budget + 4 * per_call * 1.01, (spent / per_call, calls)
    assert calls == done <= 16
    assert refused >= 64
