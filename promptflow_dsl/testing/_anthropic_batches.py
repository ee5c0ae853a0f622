"""Anthropic's Message Batches API on the emulator: ``/v1/messages/batches``.

Create a batch of Messages requests, poll it until ``processing_status`` is ``"ended"``,
then read its results (``results_url`` points back at the emulator), with the official
SDK. A batch is checked as Anthropic checks it (each ``custom_id`` unique and matching
``^[a-zA-Z0-9_-]{1,64}$``, at most 100,000 requests and 256 MB) and refused with a 400
otherwise (a 413 past the size). As in the real API, ``request_counts`` keeps every
request ``processing`` until the batch ends, and each request's ``params`` are checked
only then: a request the Messages API would refuse ends ``errored``.

>>> import time, anthropic
>>> from promptflow_dsl.testing import AnthropicEmulator
>>> params = {"model": "claude-3-5-haiku-20241022", "max_tokens": 100,
...           "messages": [{"role": "user", "content": "Hi"}]}
>>> with AnthropicEmulator() as server:
...     server.script(["Hello!"])
...     client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test")
...     batch = client.messages.batches.create(requests=[{"custom_id": "q1", "params": params}])
...     while batch.processing_status != "ended":
...         time.sleep(0.01)
...         batch = client.messages.batches.retrieve(batch.id)
...     (line,) = client.messages.batches.results(batch.id)
>>> line.custom_id, line.result.type, line.result.message.content[0].text
('q1', 'succeeded', 'Hello!')
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from promptflow_dsl.testing._base import Out, RecordedRequest
from promptflow_dsl.testing._batches import BatchHost, BatchRun, cut_page, response_json

__all__ = ["MAX_BYTES", "MAX_REQUESTS", "AnthropicBatches", "request_problem"]

MAX_REQUESTS = 100_000
"""The most requests a Message Batch may hold."""
MAX_BYTES = 256 * 1024 * 1024
"""The largest body a Message Batch may be created with."""
_DAY = 24 * 3600
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")

Handler = Callable[[Any], Awaitable[Any]]


def request_problem(requests: Any) -> str | None:
    """Why Anthropic refuses a batch's ``requests`` (a 400's message), or None.

    >>> request_problem([{"custom_id": "a b", "params": {}}])
    "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"
    """
    if not isinstance(requests, list):
        return "requests: Field required"
    if not 1 <= len(requests) <= MAX_REQUESTS:
        return f"requests: the batch holds {len(requests)} requests, not 1 to {MAX_REQUESTS}"
    seen: set[str] = set()
    for index, item in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(item, dict):
            return f"{where}: Input should be an object"
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str):
            return f"{where}.custom_id: Field required"
        if not _CUSTOM_ID.fullmatch(custom_id):
            return f"{where}.custom_id: String should match pattern '^{_CUSTOM_ID.pattern}$'"
        if custom_id in seen:
            return f"{where}.custom_id: custom_id {custom_id!r} is not unique in the batch"
        seen.add(custom_id)
        if not isinstance(item.get("params"), dict):
            return f"{where}.params: Field required"
    return None


def _rfc3339(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, timezone.utc).isoformat().replace("+00:00", "Z")


def _result(run: BatchRun, index: int) -> dict[str, Any]:
    """The result of *run*'s request *index*, once the batch has ended."""
    if index < len(run.answers):
        out = run.answers[index]
        if out.status == 200:
            return {"type": "succeeded", "message": response_json(out)}
        return {"type": "errored", "error": response_json(out)}
    return {"type": "canceled" if run.cancelled_at is not None else "expired"}


class AnthropicBatches(BatchHost):
    """The Message Batches API of :class:`~promptflow_dsl.testing.AnthropicEmulator`."""

    batch_endpoints = "/v1/messages/batches"

    def _refuse_headers(self, headers: Mapping[str, str]) -> Out | None:
        """An error for a request missing the key or the version header."""
        raise NotImplementedError

    def _add_batch_routes(self, app: Any) -> None:
        base = "/v1/messages/batches"
        routes: list[tuple[str, str, Handler]] = [
            ("POST", base, self._create_batch),
            ("GET", base, self._list_batches),
            ("GET", base + "/{batch_id}", self._get_batch),
            ("DELETE", base + "/{batch_id}", self._delete_batch),
            ("GET", base + "/{batch_id}/results", self._get_results),
            ("POST", base + "/{batch_id}/cancel", self._cancel),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, self._checked(handler))

    def _checked(self, handler: Handler) -> Handler:
        """*handler* behind Anthropic's checks of the key and the version header."""

        async def handle(request: Any) -> Any:
            out = self._refuse_headers(request.headers) or await handler(request)
            return out.response()

        return handle

    async def _create_batch(self, request: Any) -> Out:
        raw = await _read_capped(request, MAX_BYTES)
        if raw is None:
            return self._error(413, f"A Message Batch is at most {MAX_BYTES} bytes.")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._error(400, "The request body is not a JSON object.")
        problem = request_problem(body.get("requests"))
        if problem is not None:
            return self._error(400, problem)
        items = body["requests"]
        run = BatchRun(
            id=self._new_id("msgbatch_"),
            custom_ids=tuple(item["custom_id"] for item in items),
            requests=[
                RecordedRequest("messages", item["params"], {}, self.provider, "/v1/messages")
                for item in items
            ],
            plan=self.batch_plan,
        )
        self._submit_batch(run)
        return Out(200, self._batch_object(run))

    def _find_batch(self, request: Any) -> BatchRun | Out:
        batch_id = request.match_info["batch_id"]
        found = self._runs.get(batch_id)
        return found or self._error(404, f"No Message Batch found with id '{batch_id}'.")

    async def _get_batch(self, request: Any) -> Out:
        found = self._find_batch(request)
        return found if isinstance(found, Out) else Out(200, self._batch_object(found))

    async def _cancel(self, request: Any) -> Out:
        found = self._find_batch(request)
        if isinstance(found, Out):
            return found
        if not self._cancel_batch(found):
            return self._error(400, f"Message Batch {found.id} has ended; it cannot be canceled.")
        return Out(200, self._batch_object(found))

    async def _delete_batch(self, request: Any) -> Out:
        found = self._find_batch(request)
        if isinstance(found, Out):
            return found
        if found.ending is None:
            message = f"Message Batch {found.id} is still processing; cancel it before deleting."
            return self._error(400, message)
        del self._runs[found.id]
        return Out(200, {"id": found.id, "type": "message_batch_deleted"})

    async def _get_results(self, request: Any) -> Out:
        found = self._find_batch(request)
        if isinstance(found, Out):
            return found
        if found.ending is None:
            return self._error(400, f"Message Batch {found.id} has not ended; no results yet.")
        lines = (
            json.dumps({"custom_id": custom_id, "result": _result(found, index)}) + "\n"
            for index, custom_id in enumerate(found.custom_ids)
        )
        return Out(200, "".join(lines), content_type="application/x-jsonl")

    async def _list_batches(self, request: Any) -> Out:
        limit = request.query.get("limit", "20")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            return self._error(400, "limit: Input should be an integer from 1 to 1000")
        runs = {run.id: run for run in reversed(self._runs.values())}
        after, before = request.query.get("after_id"), request.query.get("before_id")
        ids, more = cut_page(list(runs), after=after, before=before, limit=int(limit))
        first, last = (ids[0], ids[-1]) if ids else (None, None)
        data = [self._batch_object(runs[i]) for i in ids]
        return Out(200, {"data": data, "has_more": more, "first_id": first, "last_id": last})

    # -- how a batch looks -------------------------------------------------------------

    def _batch_status(self, run: BatchRun) -> str:
        if run.ending is not None:
            return "ended"
        return "canceling" if run.cancelled_at is not None else "in_progress"

    def _batch_object(self, run: BatchRun) -> dict[str, Any]:
        ended = run.ending is not None
        unanswered = run.unanswered if ended else 0
        cancelled = run.cancelled_at is not None
        counts = {
            "processing": 0 if ended else len(run.requests),
            "succeeded": run.succeeded if ended else 0,
            "errored": run.errored if ended else 0,
            "canceled": unanswered if cancelled else 0,
            "expired": 0 if cancelled else unanswered,
        }
        results = f"{self.url}/v1/messages/batches/{run.id}/results" if ended else None
        return {
            "id": run.id,
            "type": "message_batch",
            "processing_status": self._batch_status(run),
            "request_counts": counts,
            "ended_at": _rfc3339(run.ended_at),
            "created_at": _rfc3339(run.created_at),
            "expires_at": _rfc3339(run.created_at + _DAY),
            "archived_at": None,
            "cancel_initiated_at": _rfc3339(run.cancelled_at),
            "results_url": results,
        }


async def _read_capped(request: Any, limit: int) -> bytes | None:
    """The request's body, or None past *limit* bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 20):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
