"""OpenAI's Batch API on the loopback server: ``/v1/files`` and ``/v1/batches``.

Upload a JSONL file of requests (``purpose="batch"``), create a batch from it, poll it,
then download its output file (and its error file, if any requests failed, expired or
were cancelled), all with the official SDK. A batch is validated as OpenAI validates it
(unique ``custom_id``, one model, every ``url`` the batch's endpoint, at most 50,000 lines
and 200 MB), and a file that breaks a rule makes the batch ``failed``, with ``errors``.

>>> import json, time, openai
>>> from promptflow_dsl.testing import LoopbackServer
>>> line = {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
...         "body": {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}}
>>> with LoopbackServer() as server:
...     server.script(["Hello!"])
...     client = openai.OpenAI(base_url=server.api_base, api_key="sk-test")
...     file = client.files.create(file=("in.jsonl", json.dumps(line)), purpose="batch")
...     batch = client.batches.create(input_file_id=file.id, completion_window="24h",
...                                   endpoint="/v1/chat/completions")
...     while batch.status not in ("completed", "failed", "expired", "cancelled"):
...         time.sleep(0.01)
...         batch = client.batches.retrieve(batch.id)
...     output = json.loads(client.files.content(batch.output_file_id).text)
>>> output["custom_id"], output["response"]["body"]["choices"][0]["message"]["content"]
('q1', 'Hello!')
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from promptflow_dsl.testing._base import Out, RecordedRequest
from promptflow_dsl.testing._batches import (
    BatchHost,
    BatchPlan,
    BatchRun,
    cut_page,
    response_json,
)

__all__ = ["MAX_BYTES", "MAX_REQUESTS", "BatchLine", "OpenAIBatches", "read_batch_file"]

MAX_REQUESTS = 50_000
"""The most requests a batch's input file may hold."""
MAX_BYTES = 200 * 1024 * 1024
"""The largest input file a batch may read."""
_MAX_UPLOAD = 512 * 1024 * 1024  # any file OpenAI stores
_DAY = 24 * 3600
_ENDPOINTS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}
_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_EXPIRED = "This request could not be executed before the completion window expired."
_CANCELLED = "This request could not be executed before the batch was cancelled."

Handler = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class StoredFile:
    """An uploaded file (or a batch's output), kept in memory."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def as_object(self) -> dict[str, Any]:
        """OpenAI's File object."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass(frozen=True)
class BatchLine:
    """One request of a batch's input file."""

    custom_id: str
    url: str
    body: dict[str, Any]


def _problem(code: str, message: str, line: int | None, param: str | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _line_problem(
    item: Any, number: int, endpoint: str, seen: set[str], models: set[Any]
) -> dict[str, Any] | None:
    """What OpenAI's validation says about one line (its first problem), or None."""
    if not isinstance(item, dict):
        return _problem("invalid_json_line", "This line is not a JSON object.", number, None)
    for name, kind in (("custom_id", str), ("url", str), ("body", dict)):
        if not isinstance(item.get(name), kind) or item.get(name) == "":
            message = f"Missing required parameter: '{name}'."
            return _problem("missing_required_parameter", message, number, name)
    if item.get("method") != "POST":
        message = "Invalid value for 'method': only POST is supported."
        return _problem("invalid_request", message, number, "method")
    if item["url"] != endpoint:
        message = "The URL provided for this request does not match the batch endpoint."
        return _problem("url_mismatch", message, number, "url")
    if item["custom_id"] in seen:
        message = (
            "The custom_id for this request is a duplicate of another request. "
            "The custom_id parameter must be unique for each request in a batch."
        )
        return _problem("duplicate_custom_id", message, number, "custom_id")
    seen.add(item["custom_id"])
    model = item["body"].get("model")
    if not isinstance(model, str):
        message = "Missing required parameter: 'body.model'."
        return _problem("missing_required_parameter", message, number, "body.model")
    models.add(model)
    if len(models) > 1:
        message = "The provided model differs from the model of the other requests."
        return _problem("model_mismatch", message, number, "body.model")
    return None


def read_batch_file(data: bytes, endpoint: str) -> tuple[list[BatchLine], list[dict[str, Any]]]:
    """The requests in a batch's input file, and the problems OpenAI would fail it for.

    A problem is ``{"code", "message", "param", "line"}`` (``line`` counts from 1, None for
    the whole file). Blank lines are skipped.

    >>> line = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/completions",
    ...                    "body": {"model": "m", "prompt": "Hi"}})
    >>> read_batch_file(f"{line}\\n{line}".encode(), "/v1/completions")[1][0]["code"]
    'duplicate_custom_id'
    """
    if len(data) > MAX_BYTES:
        message = f"The input file is {len(data)} bytes; a batch reads at most {MAX_BYTES}."
        return [], [_problem("file_too_large", message, None, None)]
    rows = [
        (number, text)
        for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), 1)
        if text.strip()
    ]
    if not rows:
        return [], [_problem("empty_file", "The input file is empty.", None, None)]
    lines: list[BatchLine] = []
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[Any] = set()
    for number, text in rows:
        try:
            item = json.loads(text)
        except ValueError:
            message = "This line is not parseable as valid JSON."
            problems.append(_problem("invalid_json_line", message, number, None))
            continue
        problem = _line_problem(item, number, endpoint, seen, models)
        if problem is not None:
            problems.append(problem)
        if isinstance(item, dict) and isinstance(item.get("custom_id"), str):
            lines.append(BatchLine(item["custom_id"], str(item.get("url")), item.get("body") or {}))
    if len(rows) > MAX_REQUESTS:
        message = f"The input file has {len(rows)} requests; a batch holds at most {MAX_REQUESTS}."
        problems.insert(0, _problem("too_many_tasks", message, None, None))
    return lines, problems


@dataclass(eq=False)
class OpenAIBatch(BatchRun):
    """A batch with what OpenAI's Batch object adds: its endpoint, file and metadata."""

    endpoint: str = "/v1/chat/completions"
    input_file_id: str = ""
    metadata: dict[str, str] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None


def _at(moment: float | None) -> int | None:
    return None if moment is None else int(moment)


def _metadata_problem(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or len(metadata) > 16:
        return "'metadata' must be an object of at most 16 pairs."
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 512:
            return "'metadata' keys are strings of at most 64 characters, values of 512."
    return None


class OpenAIBatches(BatchHost):
    """The Files and Batch APIs of :class:`~promptflow_dsl.testing.LoopbackServer`."""

    batch_endpoints = "/v1/files and /v1/batches"

    def _init_batches(self, plan: BatchPlan | None) -> None:
        super()._init_batches(plan)
        self._files: dict[str, StoredFile] = {}

    def _add_batch_routes(self, app: Any) -> None:
        routes: list[tuple[str, str, Handler]] = [
            ("POST", "/files", self._upload_file),
            ("GET", "/files/{file_id}", self._get_file),
            ("DELETE", "/files/{file_id}", self._delete_file),
            ("GET", "/files/{file_id}/content", self._get_file_content),
            ("POST", "/batches", self._create_batch),
            ("GET", "/batches", self._list_batches),
            ("GET", "/batches/{batch_id}", self._get_batch),
            ("POST", "/batches/{batch_id}/cancel", self._cancel),
        ]
        for prefix in ("/v1", ""):
            for method, path, handler in routes:
                app.router.add_route(method, prefix + path, self._keyed(handler))

    def _keyed(self, handler: Handler) -> Handler:
        """*handler* behind OpenAI's check of the bearer key."""

        async def handle(request: Any) -> Any:
            key = request.headers.get("authorization", "")
            if not key.lower().startswith("bearer ") or not key[7:].strip():
                return self._error(401, _MISSING_KEY).response()
            out = await handler(request)
            return out.response() if isinstance(out, Out) else out

        return handle

    # -- files -------------------------------------------------------------------------

    async def _upload_file(self, request: Any) -> Any:
        if not request.content_type.startswith("multipart/"):
            return self._error(400, "Files are uploaded as multipart/form-data.")
        fields: dict[str, str] = {}
        data: bytes | None = None
        filename = "file"
        async for part in await request.multipart():
            if part.name == "file":
                filename = part.filename or filename
                data = await _read_part(part)
                if data is None:
                    return self._error(413, f"A file holds at most {_MAX_UPLOAD} bytes.")
            elif part.name:
                fields[part.name] = await part.text()
        purpose = fields.get("purpose")
        if data is None or purpose is None:
            missing = "file" if data is None else "purpose"
            return self._error(400, f"Missing required parameter: '{missing}'.")
        if purpose not in _PURPOSES:
            return self._error(400, f"Invalid value for 'purpose': '{purpose}'.")
        return Out(200, self._store(filename, purpose, data).as_object())

    def _store(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        stored = StoredFile(self._new_id("file-"), filename, purpose, data, int(time.time()))
        self._files[stored.id] = stored
        return stored

    def _find_file(self, request: Any) -> StoredFile | Out:
        file_id = request.match_info["file_id"]
        return self._files.get(file_id) or self._error(404, f"No such File object: {file_id}")

    async def _get_file(self, request: Any) -> Any:
        found = self._find_file(request)
        return found if isinstance(found, Out) else Out(200, found.as_object())

    async def _delete_file(self, request: Any) -> Any:
        found = self._find_file(request)
        if isinstance(found, Out):
            return found
        del self._files[found.id]
        return Out(200, {"id": found.id, "object": "file", "deleted": True})

    async def _get_file_content(self, request: Any) -> Any:
        from aiohttp import web

        found = self._find_file(request)
        if isinstance(found, Out):
            return found
        return web.Response(body=found.data, content_type="application/octet-stream")

    # -- batches -----------------------------------------------------------------------

    async def _create_batch(self, request: Any) -> Any:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._error(400, "We could not parse the JSON body of your request.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if name not in body:
                return self._error(400, f"Missing required parameter: '{name}'.")
        endpoint, window = body["endpoint"], body["completion_window"]
        if endpoint not in _ENDPOINTS:
            supported = ", ".join(f"'{e}'" for e in _ENDPOINTS)
            return self._error(400, f"Invalid value for 'endpoint': {endpoint!r}; use {supported}.")
        if window != "24h":
            message = f"Invalid value for 'completion_window': {window!r}. Supported: '24h'."
            return self._error(400, message)
        problem = _metadata_problem(body.get("metadata"))
        if problem is not None:
            return self._error(400, problem)
        file = self._files.get(str(body["input_file_id"]))
        if file is None:
            return self._error(404, f"No such File object: {body['input_file_id']}")
        if file.purpose != "batch":
            message = f"The file {file.id} was not uploaded with purpose 'batch'."
            return self._error(400, message)
        lines, problems = read_batch_file(file.data, endpoint)
        path, kind = endpoint, _ENDPOINTS[endpoint]
        run = OpenAIBatch(
            id=self._new_id("batch_", 32),
            custom_ids=tuple(line.custom_id for line in lines),
            requests=[RecordedRequest(kind, line.body, {}, self.provider, path) for line in lines],
            plan=self.batch_plan,
            refusal=problems,
            endpoint=endpoint,
            input_file_id=file.id,
            metadata=body.get("metadata"),
        )
        self._submit_batch(run)
        return Out(200, self._batch_object(run))

    def _find_batch(self, request: Any) -> OpenAIBatch | Out:
        batch_id = request.match_info["batch_id"]
        run = self._runs.get(batch_id)
        if isinstance(run, OpenAIBatch):
            return run
        return self._error(404, f"No batch found with id '{batch_id}'.")

    async def _get_batch(self, request: Any) -> Any:
        found = self._find_batch(request)
        return found if isinstance(found, Out) else Out(200, self._batch_object(found))

    async def _cancel(self, request: Any) -> Any:
        found = self._find_batch(request)
        if isinstance(found, Out):
            return found
        if not self._cancel_batch(found):
            status = self._batch_status(found)
            return self._error(400, f"Cannot cancel a batch with status '{status}'.")
        return Out(200, self._batch_object(found))

    async def _list_batches(self, request: Any) -> Any:
        limit = request.query.get("limit", "20")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            return self._error(400, "Invalid 'limit': an integer from 1 to 100.")
        runs = {r.id: r for r in reversed(self._runs.values()) if isinstance(r, OpenAIBatch)}
        ids, more = cut_page(list(runs), after=request.query.get("after"), limit=int(limit))
        data = [self._batch_object(runs[i]) for i in ids]
        first, last = (ids[0], ids[-1]) if ids else (None, None)
        page = {"object": "list", "data": data, "first_id": first, "last_id": last}
        return Out(200, {**page, "has_more": more})

    # -- how a batch looks -------------------------------------------------------------

    def _batch_status(self, run: BatchRun) -> str:
        if run.ending is not None:
            return run.ending
        if run.cancelled_at is not None:
            return "cancelling"
        return "in_progress" if run.started_at is not None else "validating"

    def _batch_object(self, run: OpenAIBatch) -> dict[str, Any]:
        status = self._batch_status(run)
        ended: dict[str, int | None] = dict.fromkeys(
            ("completed", "failed", "expired", "cancelled")
        )
        ended[status] = _at(run.ended_at)
        started = run.started_at is not None and not run.refusal
        counts = {"total": len(run.requests) if started else 0}
        return {
            "id": run.id,
            "object": "batch",
            "endpoint": run.endpoint,
            "errors": {"object": "list", "data": run.refusal} if status == "failed" else None,
            "input_file_id": run.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": run.output_file_id,
            "error_file_id": run.error_file_id,
            "created_at": int(run.created_at),
            "in_progress_at": _at(run.started_at) if started else None,
            "expires_at": int(run.created_at) + _DAY,
            "finalizing_at": ended["completed"],
            "completed_at": ended["completed"],
            "failed_at": ended["failed"],
            "expired_at": ended["expired"],
            "cancelling_at": _at(run.cancelled_at),
            "cancelled_at": ended["cancelled"],
            "request_counts": {**counts, "completed": run.succeeded, "failed": run.errored},
            "metadata": run.metadata,
        }

    def _batch_ended(self, run: BatchRun) -> None:
        """Write the output and error files of *run* (none for a batch that failed)."""
        if run.refusal or not isinstance(run, OpenAIBatch):
            return
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, custom_id in enumerate(run.custom_ids):
            digest = hashlib.sha256(f"{run.id}/{index}".encode()).hexdigest()
            line: dict[str, Any] = {"id": f"batch_req_{digest[:32]}", "custom_id": custom_id}
            if index < len(run.answers):
                out = run.answers[index]
                response = {"status_code": out.status, "request_id": f"req_{digest[32:]}"}
                line.update(response={**response, "body": response_json(out)}, error=None)
                (outputs if out.status == 200 else errors).append(line)
            else:
                cancelled = run.cancelled_at is not None
                error = {"code": "batch_cancelled", "message": _CANCELLED}
                if not cancelled:
                    error = {"code": "batch_expired", "message": _EXPIRED}
                errors.append({**line, "response": None, "error": error})
        run.output_file_id = self._store_lines(f"{run.id}_output.jsonl", outputs)
        run.error_file_id = self._store_lines(f"{run.id}_error.jsonl", errors)

    def _store_lines(self, filename: str, lines: list[dict[str, Any]]) -> str | None:
        if not lines:
            return None
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return self._store(filename, "batch_output", data).id


async def _read_part(part: Any) -> bytes | None:
    """A multipart part's bytes, or None past the upload limit."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(1 << 20):
        size += len(chunk)
        if size > _MAX_UPLOAD:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
