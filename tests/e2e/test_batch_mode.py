"""Batch mode end to end: real LiteLLM, Instructor and the providers' SDKs over HTTP, to
emulators of OpenAI's Batch API and Anthropic's Message Batches."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from promptflow_dsl import BatchOptions, Model, RetryPolicy, text_generation
from promptflow_dsl._engine._cache import cache_key
from promptflow_dsl._io.recipes import load_recipe
from promptflow_dsl.testing import AnthropicEmulator, BatchPlan, LoopbackServer

from ._cli import promptflow_run, run_env, signal_once_submitted

ROOT = Path(__file__).parents[2]
RECIPE = ROOT / "recipes" / "self_instruct.py"
DOCS = pl.read_ndjson(ROOT / "recipes" / "data" / "documents.jsonl").head(4)
FAST = BatchOptions(window_s=0.3, poll_s=0.05, max_poll_s=0.2)
QUICK_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
SHOWN = ["input", "instruction", "generation", "model_name"]
EMULATORS = {"openai": LoopbackServer, "anthropic": AnthropicEmulator}


def model_at(server, **options) -> Model:
    if isinstance(server, AnthropicEmulator):
        return Model("anthropic/claude-haiku-4-5", api_base=server.api_base, api_key="sk-ant-test", **options)
    return Model("openai/gpt-4o-mini", api_base=server.api_base, api_key="sk-test", **options)


def questions(n: int) -> pl.DataFrame:
    return pl.DataFrame({"instruction": [f"Question {i}: why do rivers meander?" for i in range(n)]})


def cost(frame: pl.DataFrame) -> float:
    return frame["usage"].struct.field("cost_usd").sum()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_bundled_recipe_in_batch_mode_gives_the_online_rows_at_half_the_price(provider, tmp_path):
    recipe = load_recipe(RECIPE)
    with EMULATORS[provider]() as server:
        online = recipe.run(DOCS, model=model_at(server), cache=tmp_path / "a.sqlite", progress=False)
        assert server.stats.batches_created == 0
    with EMULATORS[provider]() as server:
        batched = recipe.run(
            DOCS, model=model_at(server), cache=tmp_path / "b.sqlite", progress=False, batch=FAST
        )
        stats = server.stats
    assert batched.select(SHOWN).equals(online.select(SHOWN))
    assert batched["error"].is_null().all() and batched.height == 12
    # Two steps, two batches: the documents' instructions, then the 12 responses.
    assert (stats.batches_created, stats.batch_requests) == (2, 4 + 12)
    assert stats.by_endpoint.get("chat", 0) + stats.by_endpoint.get("messages", 0) == 0  # nothing online
    tokens = ["input_tokens", "output_tokens"]
    assert batched["usage"].struct.unnest().select(tokens).equals(online["usage"].struct.unnest().select(tokens))
    assert cost(online) > 0
    assert cost(batched) == pytest.approx(cost(online) / 2, rel=1e-6)


def test_batch_mode_and_online_share_one_cache(tmp_path):
    cache = tmp_path / "cache.sqlite"
    with LoopbackServer() as server:
        first = text_generation.step().run(questions(5), model=model_at(server), cache=cache, progress=False, batch=FAST)
        again = text_generation.step().run(questions(5), model=model_at(server), cache=cache, progress=False)
        assert server.stats.batches_created == 1
        assert server.stats.by_endpoint.get("chat", 0) == 0  # the online run made no call
        more = text_generation.step().run(questions(7), model=model_at(server), cache=cache, progress=False)
        assert server.stats.by_endpoint.get("chat", 0) == 2  # only the two new rows
        text_generation.step().run(questions(7), model=model_at(server), cache=cache, progress=False, batch=FAST)
        assert server.stats.batches_created == 1  # online answers serve batch mode too
    assert again["generation"].equals(first["generation"])
    assert more["generation"].head(5).equals(first["generation"])
    assert (again["usage"].struct.field("cache_hit")).all()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_expired_batch_resubmits_only_the_requests_it_did_not_run(provider, tmp_path):
    with EMULATORS[provider](batches=BatchPlan(delay_s=0.3, expire_after=0.3)) as server:
        done: list[pl.DataFrame] = []
        run = threading.Thread(
            target=lambda: done.append(
                text_generation.step().run(
                    questions(10), model=model_at(server), cache=tmp_path / "c.sqlite",
                    progress=False, batch=FAST, retry=QUICK_RETRY,
                )
            )
        )
        run.start()
        while not server.batch_log:
            time.sleep(0.01)
        server.batch_plan = BatchPlan()  # the next batch runs to the end
        run.join(30)
        first, second = server.batch_log
    (out,) = done
    assert out["error"].is_null().all() and out.height == 10
    assert first.status in ("expired", "ended") and len(first.custom_ids) == 10
    assert sorted(second.custom_ids) == sorted(first.custom_ids[3:])  # only the seven that never ran
    attempts = sorted(out["usage"].struct.field("attempts").to_list())
    assert attempts == [1, 1, 1] + [2] * 7
    billed = server.stats.billed_input_tokens
    assert out["usage"].struct.field("input_tokens").sum() == billed  # paid once per answer


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_failed_requests_are_resubmitted_and_a_refused_one_fails_its_row_only(provider, tmp_path):
    flaky: set[str] = set()

    def fail(custom_id: str) -> int | None:
        if custom_id.startswith(refused_prefix[0]):
            return 400
        if custom_id not in flaky:  # every request fails once with a server error, then runs
            flaky.add(custom_id)
            return 500 if len(flaky) <= 3 else None
        return None

    refused_prefix = [""]
    frame = questions(6)
    with EMULATORS[provider](batches=BatchPlan(fail=fail)) as server:
        program = text_generation.program(frame["instruction"][5])
        refused_prefix[0] = cache_key(program, model_at(server))[:40]
        out = text_generation.step().run(
            frame, model=model_at(server), cache=tmp_path / "d.sqlite", progress=False,
            batch=FAST, retry=QUICK_RETRY,
        )
        log = server.batch_log
    errors = out["error"].to_list()
    assert [e is None for e in errors] == [True] * 5 + [False]
    assert errors[5]["type"] == "ProviderError" and "BadRequestError" in errors[5]["message"]
    assert out["instruction"][5] == frame["instruction"][5]  # the failed row keeps its input
    assert len(log[0].custom_ids) == 6
    assert len(log[1].custom_ids) == 3  # the three 500s; the 400 is not sent again
    assert all(cid in log[0].custom_ids for cid in log[1].custom_ids)


def test_a_budget_holds_in_batch_mode(tmp_path):
    with LoopbackServer() as server:
        out = text_generation.step().run(
            questions(40), model=model_at(server, max_tokens=100), cache=tmp_path / "e.sqlite",
            progress=False, batch=FAST, max_cost_usd=0.0002,
        )
        stats = server.stats
    spent = cost(out.filter(pl.col("error").is_null()))
    assert stats.batch_requests < 40  # the budget stopped gathering requests
    assert 0 < spent <= 0.0002 * 1.05
    refused = out.filter(pl.col("error").is_not_null())
    assert refused.height > 0 and (refused["error"].struct.field("type") == "BudgetExhaustedError").all()


def test_a_run_killed_after_submitting_resumes_without_submitting_again(tmp_path):
    source = tmp_path / "docs.jsonl"
    DOCS.write_ndjson(source)
    output = tmp_path / "out.parquet"
    ledger = tmp_path / "out.parquet.parts" / "batches.sqlite"
    with LoopbackServer(batches=BatchPlan(delay_s=4.0)) as server:
        command = promptflow_run(RECIPE, source, output, "--batch", "--no-progress", server=server)
        signal_once_submitted(command, run_env(tmp_path), ledger).wait()
        assert server.stats.batches_created == 1  # the first step's batch, still running
        server.batch_plan = BatchPlan()
        again = subprocess.run(command, env=run_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        log = server.batch_log
    assert len(log) == 2  # the first step's batch, waited for; then the second step's
    submitted = [cid for batch in log for cid in batch.custom_ids]
    assert len(submitted) == len(set(submitted)) == 4 + 12
    out = pl.read_parquet(output)
    assert out.height == 12 and out["error"].is_null().all()
    assert not ledger.exists()  # collected, and the parts joined
    from promptflow_dsl._io.provenance import read_provenance

    assert read_provenance(output)["engine"] == {"name": "local", "workers": 1, "batch": True}


def test_ctrl_c_leaves_the_batches_running_and_says_how_to_collect_them(tmp_path):
    source = tmp_path / "docs.jsonl"
    DOCS.write_ndjson(source)
    output = tmp_path / "out.parquet"
    ledger = tmp_path / "out.parquet.parts" / "batches.sqlite"
    env = run_env(tmp_path)
    with LoopbackServer(batches=BatchPlan(delay_s=30.0)) as server:
        command = promptflow_run(RECIPE, source, output, "--batch", "--no-progress", server=server)
        run = signal_once_submitted(command, env, ledger, sig=signal.SIGINT)
        _, stderr = run.communicate(timeout=30)
        assert run.returncode == 130
        (batch,) = server.batch_log
        assert f"{batch.id}" in stderr and "still running" in stderr
        assert "promptflow batches" in stderr
        listed = subprocess.run(
            [*command[:3], "batches", str(output)], env=env, capture_output=True, text=True, timeout=60
        )
        assert batch.id in listed.stdout and "in_progress" in listed.stdout, listed.stdout + listed.stderr
        cancelled = subprocess.run(
            [*command[:3], "batches", str(output), "--cancel"], env=env, capture_output=True, text=True, timeout=60
        )
        assert batch.id in cancelled.stdout
        assert server.batch_log[0].status in ("cancelling", "cancelled")


def test_dry_run_prices_batch_mode_at_half(tmp_path):
    source = tmp_path / "docs.jsonl"
    DOCS.write_ndjson(source)
    base = [*promptflow_run(RECIPE, source, tmp_path / "o.parquet"), "--model", "gpt-4o-mini", "--dry-run"]
    online = subprocess.run(base, env=run_env(tmp_path), capture_output=True, text=True, timeout=60)
    batched = subprocess.run([*base, "--batch"], env=run_env(tmp_path), capture_output=True, text=True, timeout=60)
    dollars = [float(next(line for line in r.stdout.splitlines() if line.startswith("total dollars")).split()[-1]) for r in (online, batched)]
    assert dollars[1] == pytest.approx(dollars[0] / 2, rel=0.01)
    assert "batch mode" in batched.stdout


def test_batch_mode_refuses_a_provider_without_a_batch_api_before_any_call(tmp_path):
    from promptflow_dsl import ModelSettingError

    model = Model("ollama/llama3.1", api_base="http://127.0.0.1:9", batch=True)
    with pytest.raises(ModelSettingError, match="batch mode covers openai/ and anthropic/"):
        text_generation.step().run(questions(2), model=model, cache=False, progress=False)


def test_a_technique_with_several_calls_sends_one_round_per_batch(tmp_path):
    from promptflow_dsl import evol_instruct

    with LoopbackServer() as server:
        out = evol_instruct.step(num_evolutions=3).run(
            questions(5), model=model_at(server), cache=tmp_path / "f.sqlite", progress=False, batch=FAST
        )
        log = server.batch_log
    assert out["error"].is_null().all()
    assert [len(batch.custom_ids) for batch in log] == [5, 5, 5]  # round by round, all rows


def test_progress_shows_each_running_batch_with_its_counts_and_age(tmp_path):
    import io

    from promptflow_dsl._engine._progress import ProgressDisplay

    stream = io.StringIO()
    options = BatchOptions(window_s=0.05, poll_s=0.1, max_poll_s=0.1)
    with LoopbackServer(batches=BatchPlan(delay_s=0.6)) as server:
        display = ProgressDisplay(enabled=True, stream=stream, interval_s=0.0)
        from promptflow_dsl import Session

        session = Session(model=model_at(server), batch=True, batch_options=options, display=display, cache=None)
        from promptflow_dsl._engine._portal import run_sync

        rows = [text_generation.sequence(f"Question {i}?") for i in range(3)]

        async def run():
            try:
                return await session.map("text_generation", rows)
            finally:
                await session.aclose()

        outcomes = run_sync(run())  # the library's own loop (LiteLLM's logging worker lives there)
        (batch,) = server.batch_log
    assert all(o.result.generation for o in outcomes)
    lines = [line for line in stream.getvalue().splitlines() if f"batch {batch.id}" in line]
    assert lines, stream.getvalue()
    assert "/3 done, 0 failed, in_progress" in lines[0] and "s old" in lines[0]


def test_a_direct_call_with_a_batch_model_is_answered_from_a_batch(tmp_path):
    with LoopbackServer() as server:
        result = text_generation("Why do rivers meander?", model=model_at(server, batch=True), cache=False)
        assert server.stats.batches_created == 1 and server.stats.by_endpoint.get("chat", 0) == 0
    assert result.generation


def test_a_reply_that_fails_validation_is_re_asked_in_a_follow_up_batch(tmp_path):
    from promptflow_dsl import self_instruct

    docs = pl.DataFrame({"input": [f"Document {i} is about rivers." for i in range(3)]})
    with LoopbackServer() as server:
        server.script([{"instructions": []}])  # the first answer in the batch has no instruction
        out = self_instruct.step(num_instructions=2).run(
            docs, model=model_at(server), cache=tmp_path / "g.sqlite", progress=False, batch=FAST
        )
        log = server.batch_log
    assert out["error"].is_null().all()
    assert [len(batch.custom_ids) for batch in log] == [3, 1]  # the re-ask, on its own
    assert log[1].custom_ids[0] not in log[0].custom_ids  # a longer conversation: a new request
    assert sorted(out["usage"].struct.field("attempts").to_list()) == [1, 1, 2]


def test_a_batch_the_provider_no_longer_knows_is_submitted_again(tmp_path):
    """A ledger entry whose batch the provider answers 404 for (deleted, another account):
    its requests go in a new batch at once, instead of polling a ghost until giving up."""
    source = tmp_path / "docs.jsonl"
    DOCS.head(2).write_ndjson(source)
    output = tmp_path / "out.parquet"
    ledger = tmp_path / "out.parquet.parts" / "batches.sqlite"
    with LoopbackServer(batches=BatchPlan(delay_s=30.0)) as first:
        command = promptflow_run(RECIPE, source, output, "--batch", "--no-progress", server=first)
        signal_once_submitted(command, run_env(tmp_path), ledger).wait()
        port = first.stats and int(first.url.rsplit(":", 1)[1])
    with LoopbackServer(port=port) as second:  # the same address, a provider without that batch
        started = time.monotonic()
        again = subprocess.run(command, env=run_env(tmp_path), capture_output=True, text=True, timeout=120)
        took = time.monotonic() - started
        assert again.returncode == 0, again.stderr
        assert second.stats.batches_created == 2  # both steps, submitted anew
    assert pl.read_parquet(output)["error"].is_null().all()
    assert took < 30, "it polled the unknown batch instead of submitting again"


def test_a_finished_output_keeps_the_ledger_of_a_batch_still_running(tmp_path):
    """Rows whose batch could not be collected (the provider refused to show it) fail; the
    output is written, and the ledger stays so a later run can collect that batch."""
    from promptflow_dsl._engine._batch import BatchLedger, SubmittedBatch
    from promptflow_dsl._io.parts import PartWriter

    output = tmp_path / "out.parquet"
    writer = PartWriter(output, {"input": "x"})
    writer.write(0, pl.DataFrame({"a": [1]}), numbered=[])
    ledger = BatchLedger(writer.batches)
    ledger.submitted(SubmittedBatch("batch_1", "openai", "gpt-4o-mini", None), ["k"])
    ledger.close()
    writer.finish()
    assert output.exists() and writer.batches.exists()
    assert not list(writer.folder.glob("part-*"))
    again = PartWriter(output, {"input": "x"})  # the next run starts over, the ledger stays
    assert again.batches.exists()
    again.close()


def test_batch_mode_for_anthropic_without_its_sdk_stops_before_any_call(monkeypatch):
    """Without the batch extra, the run stops at once naming it (not a row failing later
    with a connection error)."""
    from promptflow_dsl import ModelSettingError

    monkeypatch.setitem(sys.modules, "anthropic", None)
    with AnthropicEmulator() as server:
        with pytest.raises(ModelSettingError, match=r"promptflow_dsl\[batch\]"):
            text_generation.step().run(questions(2), model=model_at(server, batch=True), cache=False, progress=False)
        assert server.stats.requests == 0 and server.stats.batches_created == 0
