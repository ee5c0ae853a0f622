"""The emulated batch APIs through the official SDKs: OpenAI's Files + Batches, Anthropic's
Message Batches. A batch answers as the online endpoint does, and ends as its BatchPlan says."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import anthropic
import openai
import pytest

from promptflow_dsl.testing import (
    AnthropicEmulator,
    BatchPlan,
    Faults,
    LoopbackServer,
    SubmittedBatch,
    _anthropic_batches,
    _openai_batches,
    instructions,
)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_T = TypeVar("_T")
OPENAI_DONE = ("completed", "failed", "expired", "cancelled")
TOOL = {
    "type": "function",
    "function": {
        "name": "Trip",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


def wait_for(fetch: Callable[[], _T], done: Callable[[_T], bool], timeout: float = 5.0) -> _T:
    """Poll *fetch* until *done* says so (the emulated batches end in well under a second)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def read_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def without_id(body: dict[str, Any]) -> dict[str, Any]:
    """A reply body without what differs from call to call (its id and its clock)."""
    return {k: v for k, v in body.items() if k not in ("id", "created")}


# ---------------------------------------------------------------------------------------
# OpenAI


def oai(server: LoopbackServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api_base, api_key="sk-test", max_retries=0)


def chat_line(custom_id: str, text: str = "Plan a trip to Lisbon.", **body: Any) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **body}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def submit(
    client: openai.OpenAI, lines: list[dict[str, Any]], endpoint: str = "/v1/chat/completions"
) -> Any:
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    file = client.files.create(file=("requests.jsonl", data), purpose="batch")
    return client.batches.create(
        input_file_id=file.id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
    )


def finish(client: openai.OpenAI, batch_id: str) -> Any:
    return wait_for(lambda: client.batches.retrieve(batch_id), lambda b: b.status in OPENAI_DONE)


def file_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    return [] if file_id is None else read_jsonl(client.files.content(file_id).text)


def test_openai_upload_create_poll_and_download() -> None:
    with LoopbackServer(batches=BatchPlan(delay_s=0.2)) as server:
        client = oai(server)
        lines = [chat_line(f"r{i}", f"Question {i}?") for i in range(3)]
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        file = client.files.create(file=("requests.jsonl", data), purpose="batch")
        assert (file.object, file.purpose, file.status, file.bytes) == (
            "file",
            "batch",
            "processed",
            len(data),
        )
        assert file.filename == "requests.jsonl" and file.id.startswith("file-")
        assert client.files.retrieve(file.id).id == file.id
        assert client.files.content(file.id).content == data
        created = client.batches.create(
            input_file_id=file.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"run": "test"},
        )
        assert created.id.startswith("batch_") and created.status == "validating"
        assert (
            created.metadata == {"run": "test"} and created.expires_at == created.created_at + 86400
        )
        running = wait_for(
            lambda: client.batches.retrieve(created.id), lambda b: b.status != "validating"
        )
        assert running.status == "in_progress" and running.in_progress_at is not None
        assert running.request_counts is not None and running.request_counts.total == 3
        batch = finish(client, created.id)
        assert batch.status == "completed" and batch.error_file_id is None and batch.errors is None
        assert batch.completed_at is not None and batch.finalizing_at is not None
        assert batch.request_counts is not None
        assert batch.request_counts.model_dump() == {"total": 3, "completed": 3, "failed": 0}
        assert client.files.retrieve(batch.output_file_id or "").purpose == "batch_output"
        output = file_lines(client, batch.output_file_id)
        assert [line["custom_id"] for line in output] == ["r0", "r1", "r2"]
        for line in output:
            assert line["id"].startswith("batch_req_") and line["error"] is None
            assert line["response"]["status_code"] == 200
            assert line["response"]["request_id"].startswith("req_")
            assert line["response"]["body"]["object"] == "chat.completion"
        assert client.files.delete(file.id).deleted
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(file.id)


def test_openai_batch_replies_equal_online_replies_and_are_billed_alike() -> None:
    bodies = [
        chat_line("plain")["body"],
        chat_line(
            "tool", tools=[TOOL], tool_choice={"type": "function", "function": {"name": "Trip"}}
        )["body"],
    ]
    with LoopbackServer() as online:
        client = oai(online)
        expected = [
            client.chat.completions.with_raw_response.create(**b).http_response.json()
            for b in bodies
        ]
        billed = (online.stats.billed_input_tokens, online.stats.billed_output_tokens)
    with LoopbackServer() as server:
        client = oai(server)
        lines = [
            {**chat_line(cid), "body": body}
            for cid, body in zip(["plain", "tool"], bodies, strict=True)
        ]
        batch = finish(client, submit(client, lines).id)
        got = [line["response"]["body"] for line in file_lines(client, batch.output_file_id)]
        stats = server.stats
    assert [without_id(b) for b in got] == [without_id(b) for b in expected]
    assert got[1]["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "Trip"
    assert (stats.billed_input_tokens, stats.billed_output_tokens) == billed
    assert stats.requests == 0 and server.requests == []  # a batch is not online traffic


def test_openai_batch_takes_scripted_replies_in_file_order_on_the_completions_endpoint() -> None:
    line = {"method": "POST", "url": "/v1/completions", "body": {"model": "m", "prompt": "Hi"}}
    with LoopbackServer() as server:
        server.script(["first", "second"])
        client = oai(server)
        lines = [{**line, "custom_id": "a"}, {**line, "custom_id": "b"}]
        batch = finish(client, submit(client, lines, "/v1/completions").id)
        output = file_lines(client, batch.output_file_id)
    texts = [line["response"]["body"]["choices"][0]["text"] for line in output]
    assert texts == ["first", "second"]
    assert output[0]["response"]["body"]["object"] == "text_completion"


def test_openai_expired_batch_answers_the_first_share_and_expires_the_rest() -> None:
    with LoopbackServer(batches=BatchPlan(delay_s=0.1, expire_after=0.3)) as server:
        client = oai(server)
        batch = finish(client, submit(client, [chat_line(f"r{i}") for i in range(10)]).id)
        output = file_lines(client, batch.output_file_id)
        errors = file_lines(client, batch.error_file_id)
    assert batch.status == "expired" and batch.expired_at is not None and batch.completed_at is None
    assert batch.request_counts is not None
    assert batch.request_counts.model_dump() == {"total": 10, "completed": 3, "failed": 0}
    assert [line["custom_id"] for line in output] == ["r0", "r1", "r2"]
    assert [line["custom_id"] for line in errors] == [f"r{i}" for i in range(3, 10)]
    assert all(line["response"] is None for line in errors)
    assert errors[0]["error"] == {
        "code": "batch_expired",
        "message": "This request could not be executed before the completion window expired.",
    }


def test_openai_failed_requests_go_to_the_error_file_in_openai_error_shape() -> None:
    fail = {"r1": 500, "r3": 400}.get
    with LoopbackServer(batches=BatchPlan(fail=fail)) as server:
        client = oai(server)
        batch = finish(client, submit(client, [chat_line(f"r{i}") for i in range(4)]).id)
        output = file_lines(client, batch.output_file_id)
        errors = file_lines(client, batch.error_file_id)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert batch.request_counts.model_dump() == {"total": 4, "completed": 2, "failed": 2}
    assert [line["custom_id"] for line in output] == ["r0", "r2"]
    assert [(e["custom_id"], e["response"]["status_code"]) for e in errors] == [
        ("r1", 500),
        ("r3", 400),
    ]
    assert errors[0]["error"] is None
    assert set(errors[0]["response"]["body"]["error"]) == {"message", "type", "param", "code"}
    assert errors[0]["response"]["body"]["error"]["type"] == "server_error"
    assert errors[1]["response"]["body"]["error"]["type"] == "invalid_request_error"


def test_openai_cancel_mid_delay_keeps_answers_and_cancels_the_rest() -> None:
    with LoopbackServer(batches=BatchPlan(delay_s=0.3)) as server:
        client = oai(server)
        created = submit(client, [chat_line(f"r{i}") for i in range(10)])
        wait_for(
            lambda: client.batches.retrieve(created.id), lambda b: b.request_counts.completed >= 2
        )
        cancelling = client.batches.cancel(created.id)
        assert (
            cancelling.status in ("cancelling", "cancelled")
            and cancelling.cancelling_at is not None
        )
        batch = finish(client, created.id)
        output = file_lines(client, batch.output_file_id)
        errors = file_lines(client, batch.error_file_id)
        with pytest.raises(
            openai.BadRequestError, match="Cannot cancel a batch with status 'cancelled'"
        ):
            client.batches.cancel(created.id)
    assert batch.status == "cancelled" and batch.cancelled_at is not None
    answered = batch.request_counts.completed
    assert 2 <= answered < 10 and len(output) == answered and len(errors) == 10 - answered
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    assert [line["custom_id"] for line in output + errors] == [f"r{i}" for i in range(10)]


def _two_models() -> list[dict[str, Any]]:
    return [
        chat_line("a"),
        {**chat_line("b"), "body": {**chat_line("b")["body"], "model": "other"}},
    ]


@pytest.mark.parametrize(
    ("lines", "code", "line"),
    [
        ([chat_line("a"), chat_line("a")], "duplicate_custom_id", 2),
        (_two_models(), "model_mismatch", 2),
        ([chat_line("a"), {**chat_line("b"), "url": "/v1/completions"}], "url_mismatch", 2),
        ([chat_line("a"), "not json"], "invalid_json_line", 2),
    ],
    ids=["duplicate", "two-models", "other-url", "bad-json"],
)
def test_openai_invalid_file_fails_the_batch(lines: list[Any], code: str, line: int) -> None:
    with LoopbackServer() as server:
        client = oai(server)
        data = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
        file = client.files.create(file=("in.jsonl", data.encode()), purpose="batch")
        created = client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        batch = finish(client, created.id)
        stats = server.stats
    assert batch.status == "failed" and batch.failed_at is not None
    assert batch.output_file_id is None and batch.error_file_id is None
    assert batch.errors is not None and batch.errors.object == "list" and batch.errors.data
    assert (batch.errors.data[0].code, batch.errors.data[0].line) == (code, line)
    assert batch.request_counts is not None and batch.request_counts.total == 0
    assert stats.batches_created == 1 and stats.billed_output_tokens == 0


def test_openai_limits_fail_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    line = json.dumps(chat_line("x"))
    many = "".join(line.replace('"x"', f'"r{i}"') + "\n" for i in range(50_001))

    def failure(client: openai.OpenAI, data: str) -> Any:
        file = client.files.create(file=("in.jsonl", data.encode()), purpose="batch")
        created = client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        batch = finish(client, created.id)
        assert batch.status == "failed" and batch.errors and batch.errors.data
        return batch.errors.data[0]

    with LoopbackServer() as server:
        client = oai(server)
        too_many = failure(client, many)
        monkeypatch.setattr(_openai_batches, "MAX_BYTES", 100)
        too_big = failure(client, line + "\n")
        stats = server.stats
    assert (too_many.code, too_many.line) == ("too_many_tasks", None)
    assert (too_big.code, too_big.line) == ("file_too_large", None)
    assert stats.batch_requests == 50_001  # the lines submitted, though none ran


def test_openai_create_refuses_a_bad_request_at_once() -> None:
    with LoopbackServer() as server:
        client = oai(server)
        file = client.files.create(
            file=("in.jsonl", json.dumps(chat_line("a")).encode()), purpose="user_data"
        )
        with pytest.raises(openai.BadRequestError, match="purpose 'batch'"):
            client.batches.create(
                input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        with pytest.raises(openai.NotFoundError):
            client.batches.create(
                input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
            )
        with pytest.raises(openai.BadRequestError, match="endpoint"):
            client.batches.create(
                input_file_id=file.id, endpoint="/v1/moderations", completion_window="24h"
            )
        with pytest.raises(openai.NotFoundError):
            client.batches.retrieve("batch_nope")
        assert server.stats.batches_created == 0


def test_openai_list_batches_newest_first_with_cursor_pages() -> None:
    with LoopbackServer() as server:
        client = oai(server)
        ids = [submit(client, [chat_line("a")]).id for _ in range(3)]
        page = client.batches.list(limit=2)
        every = [batch.id for batch in client.batches.list(limit=2)]  # follows `after`
        raw = client.batches.with_raw_response.list(limit=2).http_response.json()
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert every == ids[::-1]
    assert (raw["object"], raw["first_id"], raw["last_id"]) == ("list", ids[2], ids[1])


def test_openai_batch_endpoints_want_a_bearer_key() -> None:
    with LoopbackServer() as server:
        request = urllib.request.Request(server.api_base + "/batches", method="GET")
        with pytest.raises(urllib.error.HTTPError) as caught:
            _OPENER.open(request, timeout=5)
    error = json.loads(caught.value.read())["error"]
    assert caught.value.code == 401 and error["type"] == "invalid_request_error"
    assert error["message"].startswith("You didn't provide an API key.")


def test_openai_batch_log_counters_reset_and_plan_assignment() -> None:
    with LoopbackServer() as server:
        client = oai(server)
        first = finish(client, submit(client, [chat_line("a"), chat_line("b")]).id)
        server.batch_plan = BatchPlan(expire_after=0.0)
        second = finish(client, submit(client, [chat_line("c")]).id)
        log, stats = server.batch_log, server.stats
        server.reset()
        after = (server.batch_log, server.stats.batches_created, server.stats.batch_requests)
        still = client.batches.retrieve(first.id).status
    assert log == [
        SubmittedBatch(first.id, ("a", "b"), "completed"),
        SubmittedBatch(second.id, ("c",), "expired"),
    ]
    assert (stats.batches_created, stats.batch_requests, stats.requests) == (2, 3, 0)
    assert after == ([], 0, 0) and still == "completed"


def test_openai_async_client_runs_a_batch() -> None:
    async def run(server: LoopbackServer) -> list[dict[str, Any]]:
        client = openai.AsyncOpenAI(base_url=server.api_base, api_key="sk-test", max_retries=0)
        data = json.dumps(chat_line("only")).encode()
        file = await client.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while batch.status not in OPENAI_DONE:
            await asyncio.sleep(0.01)
            batch = await client.batches.retrieve(batch.id)
        content = await client.files.content(batch.output_file_id or "")
        await client.close()
        return read_jsonl(content.text)

    with LoopbackServer(batches=BatchPlan(delay_s=0.05)) as server:
        server.script(["async hello"])
        (line,) = asyncio.run(run(server))
    assert line["response"]["body"]["choices"][0]["message"]["content"] == "async hello"


# ---------------------------------------------------------------------------------------
# Anthropic


def ant(server: AnthropicEmulator) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0)


def params(text: str = "Plan a trip to Lisbon.", **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    return {"model": "claude-3-5-haiku-20241022", "max_tokens": 100, "messages": messages, **extra}


def ended(client: anthropic.Anthropic, batch_id: str) -> Any:
    fetch = lambda: client.messages.batches.retrieve(batch_id)  # noqa: E731
    return wait_for(fetch, lambda b: b.processing_status == "ended")


def test_anthropic_create_poll_and_results() -> None:
    with AnthropicEmulator(batches=BatchPlan(delay_s=0.2)) as server:
        client = ant(server)
        requests = [{"custom_id": f"r-{i}", "params": params(f"Question {i}?")} for i in range(3)]
        created = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        assert created.id.startswith("msgbatch_") and created.type == "message_batch"
        assert created.processing_status == "in_progress" and created.results_url is None
        assert created.request_counts.processing == 3 and created.ended_at is None
        assert (created.expires_at - created.created_at).total_seconds() == 86400
        polled = client.messages.batches.retrieve(created.id)
        assert polled.processing_status == "in_progress" and polled.request_counts.processing == 3
        batch = ended(client, created.id)
        results = list(client.messages.batches.results(created.id))
    assert batch.ended_at is not None and batch.cancel_initiated_at is None
    assert batch.request_counts.model_dump() == {
        "processing": 0,
        "succeeded": 3,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert [r.custom_id for r in results] == ["r-0", "r-1", "r-2"]
    assert all(r.result.type == "succeeded" for r in results)
    assert results[0].result.message.content[0].type == "text"  # type: ignore[union-attr]


def test_anthropic_results_url_points_at_the_emulator() -> None:
    with AnthropicEmulator() as server:
        client = ant(server)
        created = client.messages.batches.create(requests=[{"custom_id": "a", "params": params()}])  # type: ignore[list-item]
        batch = ended(client, created.id)
        url = server.url
    assert batch.results_url == f"{url}/v1/messages/batches/{created.id}/results"


def test_anthropic_batch_replies_equal_online_replies_and_are_billed_alike() -> None:
    tool = {"name": "Trip", "input_schema": TOOL["function"]["parameters"]}  # type: ignore[index]
    bodies = [params(), params(tools=[tool], tool_choice={"type": "tool", "name": "Trip"})]
    with AnthropicEmulator() as online:
        client = ant(online)
        expected = [client.messages.create(**b).model_dump() for b in bodies]
        billed = (online.stats.billed_input_tokens, online.stats.billed_output_tokens)
    with AnthropicEmulator() as server:
        client = ant(server)
        requests = [{"custom_id": f"r{i}", "params": b} for i, b in enumerate(bodies)]
        created = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        ended(client, created.id)
        got = [r.result.message.model_dump() for r in client.messages.batches.results(created.id)]  # type: ignore[union-attr]
        stats = server.stats
    assert [without_id(b) for b in got] == [without_id(b) for b in expected]
    assert got[1]["content"][0]["type"] == "tool_use" and billed[1] > 0
    assert (stats.billed_input_tokens, stats.billed_output_tokens) == billed
    assert stats.requests == 0 and server.requests == []


def test_anthropic_expired_batch_counts_and_results() -> None:
    with AnthropicEmulator(batches=BatchPlan(delay_s=0.1, expire_after=0.3)) as server:
        client = ant(server)
        requests = [{"custom_id": f"r{i}", "params": params()} for i in range(10)]
        created = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        batch = ended(client, created.id)
        results = list(client.messages.batches.results(created.id))
    counts = batch.request_counts
    assert (counts.succeeded, counts.expired, counts.processing, counts.canceled) == (3, 7, 0, 0)
    assert [r.result.type for r in results] == ["succeeded"] * 3 + ["expired"] * 7


def test_anthropic_failed_and_invalid_requests_end_errored_in_anthropic_shape() -> None:
    no_max = {k: v for k, v in params().items() if k != "max_tokens"}
    with AnthropicEmulator(batches=BatchPlan(fail={"b": 529, "c": 429}.get)) as server:
        client = ant(server)
        requests = [{"custom_id": c, "params": params()} for c in "abc"]
        requests.append({"custom_id": "d", "params": no_max})
        created = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        batch = ended(client, created.id)
        raw = read_jsonl(client.get(batch.results_url or "", cast_to=str))  # the wire lines
        results = list(client.messages.batches.results(created.id))
    assert (batch.request_counts.succeeded, batch.request_counts.errored) == (1, 3)
    assert [r.result.type for r in results] == ["succeeded", "errored", "errored", "errored"]
    kinds = [line["result"]["error"]["error"]["type"] for line in raw[1:]]
    assert kinds == ["overloaded_error", "rate_limit_error", "invalid_request_error"]
    assert raw[1]["result"]["error"]["type"] == "error" and "max_tokens" in str(raw[3])


def test_anthropic_cancel_mid_delay_then_delete() -> None:
    with AnthropicEmulator(batches=BatchPlan(delay_s=0.3)) as server:
        client = ant(server)
        requests = [{"custom_id": f"r{i}", "params": params()} for i in range(10)]
        created = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        with pytest.raises(anthropic.BadRequestError, match="still processing"):
            client.messages.batches.delete(created.id)
        with pytest.raises(anthropic.AnthropicError, match="results_url"):
            client.messages.batches.results(created.id)
        time.sleep(0.1)
        canceling = client.messages.batches.cancel(created.id)
        assert canceling.processing_status in ("canceling", "ended")
        assert canceling.cancel_initiated_at is not None
        batch = ended(client, created.id)
        results = list(client.messages.batches.results(created.id))
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.cancel(created.id)
        deleted = client.messages.batches.delete(created.id)
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve(created.id)
        log = server.batch_log
    counts = batch.request_counts
    assert 1 <= counts.succeeded < 10 and counts.canceled == 10 - counts.succeeded
    expected = ["succeeded"] * counts.succeeded + ["canceled"] * counts.canceled
    assert [r.result.type for r in results] == expected
    assert (deleted.id, deleted.type) == (created.id, "message_batch_deleted")
    assert log == [SubmittedBatch(created.id, tuple(f"r{i}" for i in range(10)), "ended")]


@pytest.mark.parametrize(
    ("custom_ids", "needle"),
    [
        (["ok", "not ok"], "should match pattern"),
        (["a", "a"], "not unique"),
        (["x" * 65], "pattern"),
    ],
    ids=["space", "duplicate", "too-long"],
)
def test_anthropic_refuses_bad_custom_ids(custom_ids: list[str], needle: str) -> None:
    with AnthropicEmulator() as server:
        client = ant(server)
        requests = [{"custom_id": c, "params": params()} for c in custom_ids]
        with pytest.raises(anthropic.BadRequestError, match=needle) as caught:
            client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        stats = server.stats
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert stats.batches_created == 0 and server.batch_log == []


def test_anthropic_refuses_too_many_or_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_anthropic_batches, "MAX_REQUESTS", 2)
    with AnthropicEmulator() as server:
        client = ant(server)
        requests = [{"custom_id": f"r{i}", "params": params()} for i in range(3)]
        with pytest.raises(anthropic.BadRequestError, match="requests"):
            client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        monkeypatch.setattr(_anthropic_batches, "MAX_BYTES", 100)
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.batches.create(requests=requests[:1])  # type: ignore[arg-type]
    assert caught.value.status_code == 413
    assert caught.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]


def test_anthropic_list_batches_newest_first_with_pages() -> None:
    with AnthropicEmulator() as server:
        client = ant(server)
        request = [{"custom_id": "a", "params": params()}]
        ids = [client.messages.batches.create(requests=request).id for _ in range(3)]  # type: ignore[arg-type]
        page = client.messages.batches.list(limit=2)
        every = [batch.id for batch in client.messages.batches.list(limit=2)]
        before = client.messages.batches.list(before_id=ids[0], limit=1)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert (page.first_id, page.last_id) == (ids[2], ids[1])
    assert every == ids[::-1] and [b.id for b in before.data] == [ids[1]]


def test_anthropic_batch_endpoints_check_key_and_version() -> None:
    with AnthropicEmulator() as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.BadRequestError, match="anthropic-version"):
            client.messages.batches.list(extra_headers={"anthropic-version": ""})
        request = urllib.request.Request(server.url + "/v1/messages/batches", method="GET")
        with pytest.raises(urllib.error.HTTPError) as caught:
            _OPENER.open(request, timeout=5)
        stats = server.stats
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["error"]["type"] == "authentication_error"
    assert stats.requests == 0


def test_anthropic_async_client_runs_a_batch_and_stats_count_it() -> None:
    async def run(server: AnthropicEmulator) -> list[Any]:
        client = anthropic.AsyncAnthropic(base_url=server.url, api_key="k", max_retries=0)
        requests = [{"custom_id": c, "params": params()} for c in ("a", "b")]
        batch = await client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        while batch.processing_status != "ended":
            await asyncio.sleep(0.01)
            batch = await client.messages.batches.retrieve(batch.id)
        results = [line async for line in await client.messages.batches.results(batch.id)]
        await client.close()
        return results

    with AnthropicEmulator(batches=BatchPlan(delay_s=0.05)) as server:
        server.script(["one", "two"])
        results = asyncio.run(run(server))
        stats = server.stats
    texts = [r.result.message.content[0].text for r in results]
    assert texts == ["one", "two"]
    assert (stats.batches_created, stats.batch_requests) == (1, 2)


# ---------------------------------------------------------------------------------------
# Shared


def test_faults_apply_in_a_batch_but_not_the_wait() -> None:
    def faults(hang_seconds: float) -> Faults:  # the same draws, whatever a hang lasts
        return Faults(rate_500=0.5, rate_hang=0.5, hang_seconds=hang_seconds)

    lines = [chat_line(f"r{i}", f"Question {i}?") for i in range(6)]
    with LoopbackServer(faults=faults(0.01), seed=3) as online:
        client = oai(online)
        statuses = []
        for line in lines:
            try:
                client.chat.completions.create(**line["body"])
                statuses.append(200)
            except openai.InternalServerError:
                statuses.append(500)
    start = time.monotonic()
    with LoopbackServer(faults=faults(60), seed=3) as server:
        client = oai(server)
        batch = finish(client, submit(client, lines).id)
        answered = file_lines(client, batch.output_file_id) + file_lines(
            client, batch.error_file_id
        )
    answered.sort(key=lambda line: line["custom_id"])
    assert [line["response"]["status_code"] for line in answered] == statuses
    assert 200 in statuses and 500 in statuses and time.monotonic() - start < 5


def test_stopping_a_server_ends_its_batches_at_once() -> None:
    start = time.monotonic()
    with AnthropicEmulator(batches=BatchPlan(delay_s=60)) as server:
        client = ant(server)
        created = client.messages.batches.create(requests=[{"custom_id": "a", "params": params()}])  # type: ignore[list-item]
        assert created.processing_status == "in_progress"
    assert time.monotonic() - start < 5


def test_batch_plan_checks_its_values() -> None:
    with pytest.raises(ValueError, match="delay_s"):
        BatchPlan(delay_s=-1)
    with pytest.raises(ValueError, match="expire_after"):
        BatchPlan(expire_after=1.5)
    assert [BatchPlan(expire_after=0.3).answered(n) for n in (10, 3, 100)] == [3, 0, 30]


def test_instructions_name_the_batch_api() -> None:
    with LoopbackServer() as openai_server, AnthropicEmulator() as anthropic_server:
        openai_lines = instructions(openai_server)
        anthropic_lines = instructions(anthropic_server)
    assert "/v1/batches" in openai_lines[-1] and "/v1/messages/batches" in anthropic_lines[-1]
