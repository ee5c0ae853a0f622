"""End to end: embed >> dedup_semantic through the real LiteLLM, over HTTP, to the loopback
server: batching, accounting, the cache, the budget, rate limits, retries and failures."""

import asyncio
import math
import time

import polars as pl
import pytest
from click.testing import CliRunner

from promptflow_dsl import (
    Model,
    ReplyCache,
    RetryPolicy,
    RunAbortedError,
    Session,
    dedup_semantic,
    embed,
    select_diverse,
)
from promptflow_dsl._recipe._stream import stream_frame
from promptflow_dsl.cli import main
from promptflow_dsl.testing import LoopbackServer, Reply

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
SECRET = "sk-secret-embed-4242"
TOPICS = [
    "Write a short poem about the sea at night",
    "Name three rivers that flow through Europe",
    "Explain how photosynthesis turns light into sugar",
    "List the planets of the solar system in order",
    "Describe the water cycle for a ten year old",
]
# Each topic three times: as written, with a full stop, and with a question mark: 15 rows
# of which 10 are near-duplicates of the first of their topic.
TEXTS = [t + end for end in ("", ".", "?") for t in TOPICS]
FRAME = pl.DataFrame({"instruction": TEXTS})


def model_at(server: LoopbackServer) -> Model:
    return Model("openai/text-embedding-3-small", api_base=server.api_base, api_key=SECRET)


def recipe_at(server: LoopbackServer, batch_size: int = 4):
    return embed(model=model_at(server), batch_size=batch_size) >> dedup_semantic(threshold=0.9)


def test_near_duplicates_are_dropped_and_every_request_is_counted(loopback_server, tmp_path):
    result = recipe_at(loopback_server).execute(FRAME, cache=tmp_path / "c.sqlite")
    out, summary = result.frame, result.summary
    assert out["instruction"].to_list() == TOPICS  # the first of each topic is kept
    records = out["duplicates"].to_list()
    assert [sorted(d["row"] for d in r) for r in records] == [[i + 5, i + 10] for i in range(5)]
    assert all(d["similarity"] > 0.9 for r in records for d in r)
    stats = loopback_server.stats
    assert stats.requests == summary.calls == math.ceil(15 / 4)  # batched, four a request
    assert stats.by_endpoint == {"embeddings": 4}
    assert summary.input_tokens == stats.billed_input_tokens
    assert summary.cost_usd > 0  # LiteLLM prices text-embedding-3-small
    for request in loopback_server.requests:
        assert request.body["model"] == "text-embedding-3-small"
        assert 1 <= len(request.body["input"]) <= 4


def test_row_usage_adds_up_to_the_run(loopback_server):
    out = embed(model=model_at(loopback_server), batch_size=4).execute(FRAME, cache=False)
    usage = out.frame["usage"].struct.unnest()
    assert usage["attempts"].sum() == out.summary.calls == 4
    assert usage["input_tokens"].sum() == loopback_server.stats.billed_input_tokens
    assert usage["cost_usd"].sum() == pytest.approx(out.summary.cost_usd)
    assert not usage["cache_hit"].any()


def test_a_rerun_is_served_from_the_cache(loopback_server, tmp_path):
    cache = ReplyCache(tmp_path / "c.sqlite")
    first = recipe_at(loopback_server, batch_size=5).execute(FRAME, cache=cache)
    sent = loopback_server.stats.requests
    again = recipe_at(loopback_server, batch_size=2).execute(FRAME, cache=cache)  # other batches
    assert loopback_server.stats.requests == sent  # not one more request
    assert again.summary.calls == 0 and again.summary.cache_hits == 15
    assert again.frame["embedding"].to_list() == first.frame["embedding"].to_list()
    assert again.frame["usage"].struct.field("cache_hit").all()
    assert again.frame.drop("usage").equals(first.frame.drop("usage"))


def test_the_budget_stops_issuing_requests(loopback_server):
    # One request of four short texts costs about 1.6e-7 dollars: the budget is spent by it.
    run = embed(model=model_at(loopback_server), batch_size=4).execute(
        FRAME, cache=False, max_cost_usd=1e-7, max_concurrency=1
    )
    assert loopback_server.stats.requests == run.summary.calls == 1
    assert run.summary.stopped and "max_cost_usd=1e-07 reached" in run.summary.stopped
    errors = run.frame["error"].struct.field("type").to_list()
    assert errors[:4] == [None] * 4 and errors[4:] == ["BudgetExhaustedError"] * 11
    assert run.frame["embedding"][4:].null_count() == 11


def test_a_429_is_honoured_and_counted(loopback_server):
    loopback_server.script([Reply(status=429, headers={"Retry-After": "1"})])
    started = time.perf_counter()
    run = embed(model=model_at(loopback_server), batch_size=16).execute(
        FRAME, cache=False, retry=FAST_RETRY
    )
    assert time.perf_counter() - started >= 1.0  # the server's wait, not the fast backoff
    assert loopback_server.stats.by_status == {429: 1, 200: 1}
    assert run.summary.calls == 2 and run.summary.failures == 0
    assert run.frame["usage"].struct.field("attempts").to_list()[0] == 2


def test_server_errors_are_retried_and_then_fail_their_rows(loopback_server):
    loopback_server.script([Reply(status=500)])
    run = embed(model=model_at(loopback_server)).execute(FRAME, cache=False, retry=FAST_RETRY)
    assert run.summary.failures == 0 and run.summary.calls == 2
    loopback_server.reset()
    loopback_server.script([Reply(status=503)] * 3)
    frame = FRAME.head(3)
    run = embed(model=model_at(loopback_server)).execute(frame, cache=False, retry=FAST_RETRY)
    assert run.summary.calls == loopback_server.stats.requests == 3  # max_attempts
    errors = run.frame["error"].to_list()
    assert [e["type"] for e in errors] == ["ProviderError"] * 3
    assert [e["attempts"] for e in errors] == [3, 0, 0]  # the request's, on its first row
    assert run.frame["instruction"].to_list() == frame["instruction"].to_list()  # inputs kept


def test_a_refused_key_stops_the_run_early_and_is_never_shown(loopback_server):
    loopback_server.script([Reply(status=401)] * 3)
    with pytest.raises(RunAbortedError) as caught:
        embed(model=model_at(loopback_server), batch_size=16).run(FRAME, cache=False)
    assert "refused the API key" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert loopback_server.stats.requests == 1  # not one request per row
    loopback_server.script([Reply(status=401)])
    out = embed(model=model_at(loopback_server)).run(FRAME.head(2), cache=False)
    assert SECRET not in str(out["error"].to_list())


def test_select_diverse_over_real_embeddings(loopback_server):
    scored = FRAME.with_columns(score=pl.Series(range(15), dtype=pl.Int64))  # later is better
    recipe = embed(model=model_at(loopback_server)) >> select_diverse(3, threshold=0.9)
    out = recipe.run(scored, cache=False)
    # The best three topics, by their best-scored phrasing (the question mark's).
    assert out["instruction"].to_list() == [t + "?" for t in TOPICS[2:]]
    assert out["selection_rank"].to_list() == [3, 2, 1]


def test_rows_that_stream_one_at_a_time_share_requests(loopback_server):
    session = Session(max_concurrency=8)
    step = embed(model=model_at(loopback_server), batch_size=64)
    out = asyncio.run(stream_frame((step,), FRAME, session))  # one row per task, as the CLI
    assert out["embedding"].null_count() == 0
    assert out["instruction"].to_list() == TEXTS
    assert loopback_server.stats.requests == session.totals["calls"] <= 2  # not 15


def test_a_dry_run_sends_nothing(loopback_server, tmp_path):
    recipe_file = tmp_path / "recipe.py"
    recipe_file.write_text(
        "from promptflow_dsl import Model, embed, dedup_semantic\n"
        f"model = Model('openai/text-embedding-3-small', api_base={loopback_server.api_base!r},"
        " api_key='sk-x')\n"
        "recipe = embed(model=model) >> dedup_semantic()\n"
    )
    source = tmp_path / "in.jsonl"
    FRAME.write_ndjson(source)
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(recipe_file),
            "-i",
            str(source),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--model",
            "mock",
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.output
    assert loopback_server.stats.requests == 0
