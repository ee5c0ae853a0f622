"""The execution engine through the loopback server: faults, limits, budget, early stop."""

import subprocess
import sys
import textwrap
import time

import polars as pl
import pytest

from promptflow_dsl import (
    Model,
    RetryPolicy,
    RunAbortedError,
    evol_instruct,
    self_instruct,
    text_generation,
)
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
        with pytest.raises(
            RunAbortedError, match="last .* rows failed at the provider.*refused the API key"
        ):
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


def test_a_rate_limit_storm_mid_run_stops_with_the_right_diagnosis():
    served = iter(range(10**6))

    def storm(request):
        return None if next(served) < 30 else Reply(status=429, headers={"retry-after": "0"})

    frame = pl.DataFrame({"instruction": [f"Question {i}?" for i in range(400)]})
    with LoopbackServer(responder=storm) as server:
        with pytest.raises(RunAbortedError, match="last .* rows failed.*rate limiting the run"):
            text_generation.step().run(
                frame, model=model_at(server), max_concurrency=4, cache=False, retry=QUICK
            )
        assert server.stats.requests < 30 + 6 * 30  # it stopped soon after the storm began


def test_a_huge_retry_after_is_capped_and_the_wait_is_shown(capsys):
    retry = RetryPolicy(max_attempts=3, max_retry_after_s=0.5)
    frame = pl.DataFrame({"instruction": ["Question?"]})
    with LoopbackServer() as server:
        server.script([Reply(status=429, headers={"retry-after": "3600"})])
        began = time.monotonic()
        out = text_generation.step().run(
            frame, model=model_at(server), cache=False, retry=retry, progress=None
        )
        took = time.monotonic() - began
    assert out["error"][0] is None and took < 5
    assert "openai/loopback-model is rate limited: waiting until" in capsys.readouterr().err


def test_a_model_rate_limited_for_too_long_stops_the_run_with_one_line():
    retry = RetryPolicy(max_attempts=1000, max_retry_after_s=0.1, max_rate_limited_s=1.0)
    frame = pl.DataFrame({"instruction": [f"Question {i}?" for i in range(3)]})
    refuse = lambda request: Reply(status=429, headers={"retry-after": "0.1"})  # noqa: E731
    with LoopbackServer(responder=refuse) as server:
        began = time.monotonic()
        with pytest.raises(RunAbortedError, match=r"answered only 429 \(rate limited\) for"):
            text_generation.step().run(frame, model=model_at(server), cache=False, retry=retry)
    assert time.monotonic() - began < 10


def test_progress_off_a_terminal_is_a_log_line_every_few_seconds(capsys, monkeypatch):
    monkeypatch.setattr("promptflow_dsl._engine._progress.LOG_INTERVAL_S", 0.2)
    frame = pl.DataFrame({"instruction": [f"Question {i}?" for i in range(20)]})
    with LoopbackServer(latency=0.1) as server:
        text_generation.step().run(frame, model=model_at(server), cache=False, max_concurrency=2)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("progress: ")]
    assert 3 <= len(lines) <= 15
    assert lines[-1].startswith("progress: text_generation 20/20 rows, 0 failed;")
    assert "calls/s" in lines[-1] and "tok" in lines[-1] and "$" in lines[-1]


def test_a_storm_of_rate_limits_says_so_once_not_a_line_per_retry(capsys):
    retry = RetryPolicy(max_attempts=8, base_delay_s=0.01, max_delay_s=0.05)
    frame = pl.DataFrame({"instruction": [f"Question {i}?" for i in range(30)]})
    faults = Faults(rate_429=0.5, retry_after=0.01)
    with LoopbackServer(faults=faults, seed=4) as server:
        text_generation.step().run(frame, model=model_at(server), cache=False, retry=retry)
        limited = server.stats.by_status.get(429, 0)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("progress: ")]
    assert limited >= 10
    assert sum("rate limited: waiting" in line for line in lines) <= 3


@pytest.mark.parametrize("eliminate", [False, True])
def test_the_budget_holds_for_a_multi_call_technique(eliminate):
    budget = 0.0005
    frame = pl.DataFrame({"instruction": [f"Explain topic {i}." for i in range(60)]})
    with LoopbackServer() as server:
        result = evol_instruct.step(
            num_evolutions=3, generate_answers=True, eliminate=eliminate
        ).execute(
            frame,
            model=model_at(server, "openai/gpt-4o-mini"),
            max_concurrency=2,
            cache=False,
            max_cost_usd=budget,
        )
        billed = server.stats.requests
    spent, calls = result.summary.cost_usd, result.summary.calls
    assert calls == billed
    # Checked before every call: past the budget, only the 2 calls in flight finish (a check
    # per row let a row's remaining 6 or 7 calls through, for each row in flight).
    assert budget <= spent <= budget + 3 * spent / calls
    assert "max_cost_usd" in result.summary.stopped


def test_a_run_that_stops_early_leaves_no_warnings_on_stderr():
    # Early stop cancels calls in flight; LiteLLM had built some of their requests in a
    # worker thread, and each dropped one printed "coroutine ... was never awaited".
    script = textwrap.dedent(
        """
        import polars as pl
        from promptflow_dsl import Model, RunAbortedError, text_generation
        from promptflow_dsl.testing import LoopbackServer, Reply

        refuse = lambda request: Reply(status=429, headers={"Retry-After": "0"})
        with LoopbackServer(responder=refuse, latency=0.05) as server:
            model = Model("openai/x", api_base=server.api_base, api_key="sk-test")
            frame = pl.DataFrame({"instruction": [f"Q{i}?" for i in range(200)]})
            try:
                text_generation.step().run(frame, model=model, max_concurrency=16, cache=False)
            except RunAbortedError:
                print("stopped early")
        """
    )
    for _ in range(3):  # the race shows most runs, not every one
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        assert done.stdout.strip() == "stopped early", done.stderr
        assert "never awaited" not in done.stderr and "Traceback" not in done.stderr
