"""Adversarial tests of batch mode: each test pins a defect found in review (its docstring
says what was WRONG and what is RIGHT; each failed before its fix). Real LiteLLM, Instructor and the providers' SDKs over HTTP to the emulators; the
emulators are only configured (a limit, a refusal, an outage), never the library."""

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import polars as pl
import pytest

from promptflow_dsl import (
    BatchOptions,
    Model,
    ModelSettingError,
    Recipe,
    RetryPolicy,
    explode,
    self_instruct,
    text_generation,
)
from promptflow_dsl._engine._batch._clients import OpenAIBatches as OpenAIBatchClient
from promptflow_dsl.testing import BatchPlan, LoopbackServer, OllamaEmulator
from promptflow_dsl.testing import _openai_batches as openai_emulator

from ._cli import signal_once_submitted

FAST = BatchOptions(window_s=0.3, poll_s=0.05, max_poll_s=0.2)
QUICK_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
SECRET = "sk-proj-Zq8VvN3kR7tL2wXyP4mB9cHd"  # long enough to be a known secret


def openai_at(server, **options) -> Model:
    return Model("openai/gpt-4o-mini", api_base=server.api_base, api_key="sk-test", **options)


def questions(n: int) -> pl.DataFrame:
    return pl.DataFrame({"instruction": [f"Question {i}: why do rivers meander?" for i in range(n)]})


class OutageServer(LoopbackServer):
    """OpenAI's emulator whose batch look-ups (GET /v1/batches/ID) fail for a while: with
    ``unavailable`` 503s (an incident at the provider), or with ``echo_key`` 503s whose
    message repeats the bearer key (as some proxies do)."""

    unavailable = 0
    echo_key = 0
    refuse_key: str | None = None  # 401 on the Files/Batches API for this key

    def _keyed(self, handler):
        inner = super()._keyed(handler)

        async def handle(request):
            key = request.headers.get("authorization", "")[7:]
            looking = request.method == "GET" and "/batches/" in request.path
            if looking and self.unavailable > 0:
                self.unavailable -= 1
                return self._error(503, "The server is overloaded.").response()
            if looking and self.echo_key > 0:
                self.echo_key -= 1
                return self._error(503, f"Upstream rejected the key {key}.").response()
            if self.refuse_key is not None and key == self.refuse_key:
                return self._error(401, "Incorrect API key provided.").response()
            return await inner(request)

        return handle


# -- resubmission: nothing submitted is submitted again -----------------------------------


def test_a_batch_that_cannot_be_looked_at_for_a_while_is_not_paid_for_twice(tmp_path):
    """WRONG: when a running batch cannot be looked at ``max_poll_failures`` times in a row
    (a provider incident on GET /v1/batches/ID: with the defaults about 2.5 minutes), the
    batcher gives up on it, and the engine takes that for a dropped connection and sends
    every one of its requests again in a new batch, though the first one runs on and is
    billed. The run even ends saying the first batch is "still running ... nothing is
    submitted twice". RIGHT: a batch the provider accepted is never resubmitted while it
    may still run: keep looking (back off), or fail its rows (non-transient) and leave it
    in the ledger for a later run to collect."""
    options = BatchOptions(window_s=0.3, poll_s=0.05, max_poll_s=0.2)
    with OutageServer(batches=BatchPlan(delay_s=0.5)) as server:
        server.unavailable = 9  # three looks; the SDK tries each one three times
        out = text_generation.step().run(
            questions(4), model=openai_at(server), cache=tmp_path / "c.sqlite",
            progress=False, batch=options, retry=QUICK_RETRY,
        )
        stats = server.stats
    assert stats.batches_created == 1, f"{stats.batches_created} batches for 4 requests"
    assert stats.billed_input_tokens == out["usage"].struct.field("input_tokens").sum()


def test_a_batch_that_failed_as_a_whole_is_sent_again_by_a_later_run(tmp_path, monkeypatch):
    """WRONG: when OpenAI fails a whole batch (status ``failed``: here its input broke the
    provider's limit; in practice often ``token_limit_exceeded``, the organisation's
    enqueued-token quota, which clears as other batches finish), every request gets a
    400 and the ledger keeps the failed batch as the request's latest. A later run with
    the same cache (the Python ledger lives beside the cache for good) finds that batch,
    reads the same 400 again and never sends the request: the rows can never be made.
    RIGHT: a batch that failed before running any request has no answers: its requests
    are not in it (forget them in the ledger, or treat them as Lost), so a later run (or a
    retry in this one) sends them again."""
    qs = questions(3)
    with LoopbackServer() as server:
        monkeypatch.setattr(openai_emulator, "MAX_REQUESTS", 2)  # the provider refuses 3
        first = text_generation.step().run(
            qs, model=openai_at(server), cache=tmp_path / "c.sqlite", progress=False,
            batch=FAST, retry=QUICK_RETRY,
        )
        assert first["error"].is_not_null().all()  # the whole batch failed, every time
        resent = server.stats.batches_created
        assert resent == QUICK_RETRY.max_attempts  # sent again within this run, up to the bound
        monkeypatch.setattr(openai_emulator, "MAX_REQUESTS", 50_000)  # the quota is back
        again = text_generation.step().run(
            qs, model=openai_at(server), cache=tmp_path / "c.sqlite", progress=False,
            batch=FAST, retry=QUICK_RETRY,
        )
        created = server.stats.batches_created
    assert created == resent + 1, "the second run sent nothing"
    assert again["error"].is_null().all(), again["error"].to_list()[0]


def test_cancelling_with_promptflow_batches_while_a_run_waits_is_not_undone(tmp_path):
    """WRONG: ``promptflow batches --cancel`` asks the provider to stop the batches; a run
    still waiting for them sees its requests come back cancelled and submits them all
    again in a new batch (the retry meant for batches the provider cancelled), so the
    user's cancel buys nothing and the run goes on spending. RIGHT: a batch cancelled by
    the user (the ledger could note it; or any cancellation the run did not expect) is
    not resubmitted: its rows fail as cancelled, kept for a later run."""
    env = {**os.environ, "PROMPTFLOW_CACHE_DIR": str(tmp_path / "cache"), "OPENAI_API_KEY": "sk-test"}
    cache = tmp_path / "cache" / "cache.sqlite"  # the default cache of that environment
    done: list[pl.DataFrame] = []
    with LoopbackServer(batches=BatchPlan(delay_s=20.0)) as server:
        run = threading.Thread(
            target=lambda: done.append(
                text_generation.step().run(
                    questions(3), model=openai_at(server), cache=cache, progress=False,
                    batch=FAST, retry=RetryPolicy(max_attempts=2, base_delay_s=0.01),
                )
            )
        )
        run.start()
        while not server.batch_log:
            time.sleep(0.05)
        server.batch_plan = BatchPlan(delay_s=0.2)  # a batch sent after this ends at once
        cancel = subprocess.run(
            [sys.executable, "-m", "promptflow_dsl", "batches", "--cancel"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert server.batch_log[0].id in cancel.stdout, cancel.stdout + cancel.stderr
        run.join(60)
        created = server.stats.batches_created
    assert created == 1, "the cancelled requests were submitted again"


# -- the failed row records why ----------------------------------------------------------


def test_a_refused_batch_fails_its_rows_with_the_providers_reason(tmp_path):
    """WRONG: when the provider refuses to take a batch (here a 401 from the Files API: a
    wrong key), the batcher's ProviderError ("openai refused a batch of 3 requests: Error
    code: 401 ...") is raised inside the httpx transport; the OpenAI SDK turns any
    transport exception into ``APIConnectionError``, so the row says only
    "InternalServerError: OpenAIException - Connection error.", is retried as a transient
    failure (every attempt uploads the file again) and no key hint is given. The same
    path hides "could not collect batch ..." and a missing-key ModelSettingError. RIGHT:
    the row's error carries the provider's status and message (401, "Check the API key"),
    and a 4xx refusal is not retried: the transport should answer with the provider's
    HTTP error (or the ProviderError be re-raised from the chain in ``_attempt``)."""
    with OutageServer() as server:
        server.refuse_key = "sk-test"
        out = text_generation.step().run(
            questions(3), model=openai_at(server), cache=tmp_path / "c.sqlite",
            progress=False, batch=FAST, retry=QUICK_RETRY,
        )
    error = out["error"][0]
    assert "Connection error" not in error["message"], error["message"]
    assert "401" in error["message"] or "API key" in error["message"], error["message"]
    assert error["attempts"] == 1  # a refusal is not worth a retry


def test_a_request_that_expired_on_its_last_attempt_does_not_promise_another_batch(tmp_path):
    """WRONG: a request whose batch expired before it ran fails its row, after its last
    attempt, with "the request was expired in its batch before it ran; it goes in the next
    batch": there is no next batch. RIGHT: the message says the request expired unrun in
    batch ID after N attempts, and that a later run sends it again."""
    with LoopbackServer(batches=BatchPlan(delay_s=0.2, expire_after=0.0)) as server:
        out = text_generation.step().run(
            questions(2), model=openai_at(server), cache=tmp_path / "c.sqlite",
            progress=False, batch=FAST, retry=RetryPolicy(max_attempts=1),
        )
    message = out["error"][0]["message"]
    assert "expired" in message
    assert "goes in the next batch" not in message, message


# -- refused before the first call ---------------------------------------------------------


def test_a_recipe_with_an_unbatchable_model_in_a_later_step_is_refused_before_any_batch(tmp_path):
    """WRONG: docs/running.md says a model without a batch API "is refused before the first
    call"; it is refused only when its own step makes its first call. With ``batch=True``
    and ``ollama/`` in the second step, the first step's batch is submitted, paid for and
    waited for (up to 24 hours at a real provider) before the run fails with
    ModelSettingError. RIGHT: ``run`` (and ``promptflow run --batch``) checks every model
    step's model with ``check_batchable`` before any call."""
    docs = pl.DataFrame({"input": [f"Document {i} is about rivers." for i in range(3)]})
    with LoopbackServer() as server, OllamaEmulator() as ollama:
        recipe = (
            self_instruct.step(num_instructions=2)
            >> explode("instructions", into="instruction")
            >> text_generation.step(model=Model("ollama/llama3.1", api_base=ollama.api_base))
        )
        with pytest.raises(ModelSettingError, match="batch mode covers"):
            recipe.run(docs, model=openai_at(server), cache=tmp_path / "c.sqlite", progress=False, batch=FAST)
        created = server.stats.batches_created
    assert created == 0, "a batch was submitted before the refusal"


# -- the budget holds ---------------------------------------------------------------------


def test_a_budget_holds_for_structured_calls_in_batch_mode(tmp_path):
    """WRONG: a batch request holds ``len(program.text()) // 4 + 1`` tokens in plus
    ``max_tokens`` out; the request LiteLLM and Instructor actually send adds the result
    type's schema (the tool definition), several times the prompt for a short document.
    Requests gathered together then pass ``max_cost_usd``: here about 20% over. RIGHT: the
    hold counts the request as sent (the transport has the body: count its tokens, or add
    the schema's size to the estimate), so the spend stays within the budget (the 5% slack
    that test_a_budget_holds_in_batch_mode allows)."""
    docs = pl.DataFrame({"input": [f"Document {i} is about rivers." for i in range(40)]})
    budget = 0.0005
    with LoopbackServer() as server:
        out = self_instruct.step(num_instructions=2).run(
            docs, model=openai_at(server, max_tokens=20), cache=tmp_path / "c.sqlite",
            progress=False, batch=FAST, max_cost_usd=budget,
        )
    spent = out["usage"].struct.field("cost_usd").sum()
    assert (out["error"].struct.field("type") == "BudgetExhaustedError").any()  # the budget bit
    assert spent <= budget * 1.05, f"spent ${spent:.6f} of a ${budget} budget"


# -- size limits -------------------------------------------------------------------------


def test_a_batch_file_never_passes_the_providers_byte_limit(tmp_path, monkeypatch):
    """WRONG: the batcher counts a request as ``len(json.dumps(body)) + len(custom_id) +
    64`` bytes, but each line of OpenAI's JSONL file is ``{"custom_id": ..., "method":
    "POST", "url": "/v1/chat/completions", "body": ...}`` plus a newline: 77 bytes around
    the body and id for chat (73 for /v1/completions). A batch the batcher fills up to the
    byte limit (200 MB) is a file larger than the limit, which OpenAI fails as a whole:
    every row in it fails. Shown with a small limit on both sides: the limit is one byte
    less than the file of 10 requests. RIGHT: count the bytes of the line as written (or
    build the line first), so a full batch is split in two and every row succeeds."""
    qs = questions(10)
    with LoopbackServer() as server:
        text_generation.step().run(qs, model=openai_at(server), cache=tmp_path / "a.sqlite", progress=False, batch=FAST)
        client = openai.OpenAI(base_url=server.api_base, api_key="sk-test")
        (batch,) = server.batch_log
        size = len(client.files.content(client.batches.retrieve(batch.id).input_file_id).content)
        limit = size - 1
        monkeypatch.setattr(openai_emulator, "MAX_BYTES", limit)
        monkeypatch.setattr(OpenAIBatchClient, "limits", (50_000, limit))
        out = text_generation.step().run(qs, model=openai_at(server), cache=tmp_path / "b.sqlite", progress=False, batch=FAST)
        sizes = [len(b.custom_ids) for b in server.batch_log[1:]]
    assert out["error"].is_null().all(), out["error"].drop_nulls().to_list()[:1]
    assert sum(sizes) == 10 and len(sizes) == 2


# -- secrets -------------------------------------------------------------------------------


def test_a_key_echoed_while_a_batch_is_watched_never_reaches_the_log(tmp_path, caplog):
    """WRONG: ``_watch_until_ended`` logs "could not look at batch ID (EXC); trying again"
    with the SDK's exception text as it is; a provider (or proxy) that echoes the key in a
    401 puts the key in the log. docs/running.md promises keys are masked in every log
    line the library writes. RIGHT: scrub the text (``_secrets.scrub``) before logging it,
    or log through a filter that scrubs every record of ``promptflow_dsl``."""
    caplog.set_level(logging.WARNING, logger="promptflow_dsl")
    with OutageServer(batches=BatchPlan(delay_s=0.3)) as server:
        server.echo_key = 3  # one look: the SDK tries each one three times
        model = Model("openai/gpt-4o-mini", api_base=server.api_base, api_key=SECRET)
        out = text_generation.step().run(
            questions(2), model=model, cache=tmp_path / "c.sqlite", progress=False, batch=FAST
        )
    assert out["error"].is_null().all()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "could not look at batch" in logged  # the echo was seen
    assert SECRET not in logged


def test_promptflow_batches_never_prints_a_key_the_provider_echoes(tmp_path):
    """WRONG: ``promptflow batches`` prints "(could not ask openai: EXC)" with the SDK's
    exception text as it is, and ``click.echo`` it without ``scrub``: a provider that
    echoes ``OPENAI_API_KEY`` in a 401 has the key printed on the terminal. RIGHT: every
    line of ``batch_report`` is scrubbed (as ``_fail`` and ``_say`` do for ``run``)."""
    cache = tmp_path / "cache" / "cache.sqlite"
    env = {**os.environ, "PROMPTFLOW_CACHE_DIR": str(cache.parent), "OPENAI_API_KEY": SECRET}
    with OutageServer(batches=BatchPlan(delay_s=30.0)) as server:
        # A run from Python that is stopped while its batch runs (as Ctrl-C would).
        async def stopped_run() -> None:
            task = asyncio.ensure_future(
                Recipe((text_generation.step(),)).arun(
                    questions(2), model=openai_at(server), cache=cache, progress=False, batch=FAST
                )
            )
            while not server.batch_log:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # noted in the ledger
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(stopped_run())
        server.echo_key = 100
        listed = subprocess.run(
            [sys.executable, "-m", "promptflow_dsl", "batches"],
            env=env, capture_output=True, text=True, timeout=60,
        )
    shown = listed.stdout + listed.stderr
    assert server.batch_log[0].id in shown and "could not ask openai" in shown, shown
    assert SECRET not in shown, shown


# -- totals: nothing is doubled ------------------------------------------------------------


def test_a_resumed_batch_run_counts_each_batch_answer_once_in_the_totals(tmp_path):
    """WRONG: a killed ``promptflow run --batch`` already counted every request it put in a
    batch (one call each, in ``spend.jsonl``); the run started again waits for the same
    batches and counts each of their requests as a new call, and with ``--no-cache`` also
    counts again the tokens and dollars of answers the first run had collected (it reads
    them again from the first step's batch). Here the provider ran 20 requests and billed
    931 input tokens; the output's provenance says 40 calls and about 1,700 tokens. The
    budget of a resumed run (``Account(spent=writer.spent())``) is inflated the same way.
    RIGHT: a request answered from a batch that an earlier run submitted (and counted) is
    not counted as a call again, and an answer whose usage was counted is not counted
    twice, so the totals agree with the provider's bill."""
    from promptflow_dsl._io.provenance import KEY

    root = Path(__file__).parents[2]
    source = tmp_path / "docs.jsonl"
    pl.DataFrame({"input": [f"Document {i % 2} is about rivers." for i in range(5)]}).write_ndjson(source)
    output = tmp_path / "out.parquet"
    env = {**os.environ, "PROMPTFLOW_CACHE_DIR": str(tmp_path / "cache"), "OPENAI_API_KEY": "sk-test"}
    with LoopbackServer(batches=BatchPlan(delay_s=3.0)) as server:
        command = [
            sys.executable, "-m", "promptflow_dsl", "run", str(root / "recipes" / "self_instruct.py"),
            "-i", str(source), "-o", str(output), "--model", "openai/gpt-4o-mini",
            "--api-base", server.api_base, "--no-progress", "--batch", "--no-cache",
        ]
        ledger = output.with_name("out.parquet.parts") / "batches.sqlite"
        signal_once_submitted(command, env, ledger, batches=2).wait()  # the second step's runs
        server.batch_plan = BatchPlan()
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        stats = server.stats
    assert stats.batches_created == 2  # nothing was submitted twice...
    totals = json.loads(pl.read_parquet_metadata(output)[KEY])["totals"]
    assert totals["input_tokens"] == stats.billed_input_tokens  # ...nor may it be counted twice
    assert totals["calls"] == stats.batch_requests


def test_a_run_without_a_cache_does_not_promise_to_collect_its_batches(tmp_path, caplog):
    """WRONG: with ``cache=False`` there is no ledger (the session warns "a run that is
    stopped cannot find its batches again"), yet a run stopped while its batch runs says
    "to collect them, run the same recipe again with the same cache: nothing is submitted
    twice"; doing so submits everything again. RIGHT: without a ledger the message says
    the batches cannot be collected by a later run (list or cancel them at the provider),
    or batch mode keeps a ledger even without a reply cache."""
    caplog.set_level(logging.WARNING, logger="promptflow_dsl")
    with LoopbackServer(batches=BatchPlan(delay_s=30.0)) as server:
        async def stopped_run() -> None:
            task = asyncio.ensure_future(
                Recipe((text_generation.step(),)).arun(
                    questions(2), model=openai_at(server), cache=False, progress=False, batch=FAST
                )
            )
            while not server.batch_log:
                await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(stopped_run())
    told = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert told, [r.getMessage() for r in caplog.records]
    assert "nothing is submitted twice" not in told[-1], told[-1]
