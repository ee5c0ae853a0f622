"""The execution engine through the loopback server: faults, limits, budget, early stop."""

import time

import polars as pl
import pytest

from promptflow_dsl import Model, RetryPolicy, RunAbortedError, self_instruct, text_generation
from promptflow_dsl.testing import Faults, LoopbackServer, Reply

QUICK = RetryPolicy(max_attempts=6, base_delay_s=0.01, max_delay_s=0.2)


def model_at(server, name="openai/loopback-model", **options):
    return Model(name, api_base=server.api_base, api_key="sk-test", **options)


def test_every_row_ends_done_or_failed_with_its_reason_under_faults():
    faults = Faults(
        rate_429=0.20,
        retry_after=0.05,
        rate_500=0.05,
        rate_hang=0.02,
        hang_seconds=5,
        rate_malformed=0.05,
    )
    frame = pl.DataFrame({"instruction": [f"Question {i}?" for i in range(80)]})
    with LoopbackServer(faults=faults, seed=7) as server:
        out = text_generation.step().run(
            frame, model=model_at(server, timeout=0.5), max_concurrency=16, cache=False, retry=QUICK
        )
        stats = server.stats
    assert (
        out["instruction"].to_list() == frame["instruction"].to_list()
    )  # none lost, none duplicated
    done = out.filter(pl.col("error").is_null())
    failed = out.filter(pl.col("error").is_not_null())
    assert done["generation"].is_not_null().all() and failed["generation"].is_null().all()
    assert done.height > 60
    assert all(e["type"] and e["message"] and e["attempts"] >= 1 for e in failed["error"].to_list())
    attempts = done["usage"].struct.field("attempts")
    assert attempts.max() > 1  # retries happened and are visible
    assert stats.by_status.get(429, 0) > 0 and stats.by_status.get(500, 0) > 0
    assert stats.requests == attempts.sum() + sum(e["attempts"] for e in failed["error"].to_list())


def test_rpm_cap_holds():
    frame = pl.DataFrame({"instruction": [f"Question {i}?" for i in range(21)]})
    with LoopbackServer() as server:
        started = time.perf_counter()
        text_generation.step().run(
            frame, model=model_at(server, rpm=600), max_concurrency=21, cache=False
        )
        elapsed = time.perf_counter() - started
    assert 1.9 <= elapsed <= 3.5  # 21 requests at 10 per second: the last leaves after 2 s


def test_a_429_slows_the_model_and_honours_retry_after():
    replies = iter([Reply(status=429, headers={"Retry-After": "0.6"})])

    def responder(request):
        return next(replies, None)

    with LoopbackServer(responder=responder) as server:
        started = time.perf_counter()
        result = text_generation("Hi?", model=model_at(server), cache=False)
        elapsed = time.perf_counter() - started
    assert result.generation and elapsed >= 0.6


def test_wrong_key_stops_early_instead_of_spending_through_the_dataset():
    frame = pl.DataFrame({"input": [f"Doc {i}" for i in range(300)]})
    with LoopbackServer(responder=lambda request: Reply(status=401)) as server:
        with pytest.raises(RunAbortedError, match="first .* calls failed at the provider.*API key"):
            self_instruct.step().run(frame, model=model_at(server), max_concurrency=4, cache=False)
        assert server.stats.requests <= 20


def test_max_cost_stops_issuing_calls_and_says_so():
    frame = pl.DataFrame({"instruction": [f"Question {i}?" for i in range(10)]})
    with LoopbackServer() as server:
        result = text_generation.step().execute(
            frame,
            model=model_at(server, "openai/gpt-4o-mini"),
            max_concurrency=1,
            cache=False,
            max_cost_usd=1e-9,
        )
        requests = server.stats.requests
    assert requests == 1
    assert result.summary.cost_usd > 0 and "max_cost_usd" in result.summary.stopped
    skipped = result.frame["error"].drop_nulls().to_list()
    assert len(skipped) == 9 and {e["type"] for e in skipped} == {"BudgetExhaustedError"}


def test_validation_re_asks_are_bounded_by_tokens():
    with LoopbackServer() as server:
        server.script([{"wrong": "shape"}] * 5)
        out = self_instruct.step().run(
            pl.DataFrame({"input": ["x"]}),
            model=model_at(server, max_validation_retries=4, validation_token_budget=50),
            cache=False,
        )
        assert server.stats.requests < 5
    assert out["error"][0]["type"] == "ValidationExhaustedError"


def test_usage_struct_and_summary_totals():
    frame = pl.DataFrame({"instruction": ["One?", "Two?"]})
    with LoopbackServer() as server:
        result = text_generation.step().execute(
            frame, model=model_at(server, "openai/gpt-4o-mini"), cache=False
        )
    usage = result.frame["usage"].struct.unnest()
    assert usage["input_tokens"].min() > 0 and usage["cost_usd"].min() > 0
    assert usage["cache_hit"].to_list() == [False, False] and usage["attempts"].to_list() == [1, 1]
    summary = result.summary
    assert summary.calls == 2 and summary.input_tokens == usage["input_tokens"].sum()
    assert summary.cost_usd == pytest.approx(usage["cost_usd"].sum())


def test_a_missing_key_fails_at_once_and_names_the_variable(monkeypatch, loopback_server):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = Model("openai/gpt-4o-mini", api_base=loopback_server.api_base)
    out = text_generation.step().run(
        pl.DataFrame({"instruction": ["Hi?"]}), model=model, cache=False
    )
    error = out["error"][0]
    assert error["attempts"] == 1 and "OPENAI_API_KEY" in error["message"]
    assert loopback_server.stats.requests == 0
