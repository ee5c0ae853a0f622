"""The providers' batch APIs, through their official SDKs: submit, watch, collect, cancel.

Each client turns one provider's batch objects into the engine's terms: a batch's
:class:`BatchState`, and per request either an :class:`Answer` (the HTTP status and body
the request would have had online) or :class:`Lost` (it expired or was cancelled before it
ran, so it may be sent again).

>>> anthropic_status({"type": "error", "error": {"type": "overloaded_error"}})
529
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Protocol

from ..._errors import ModelSettingError
from ..._model import Model
from .._modes import provider_of

__all__ = [
    "Answer",
    "AnthropicBatches",
    "BatchClient",
    "BatchState",
    "Lost",
    "OpenAIBatches",
    "batch_client",
    "check_batchable",
    "error_answer",
]

OPENAI_LIMITS = (50_000, 200 * 1024 * 1024)
"""Requests and bytes one OpenAI batch file may hold."""
ANTHROPIC_LIMITS = (100_000, 256 * 1024 * 1024)
"""Requests and bytes one Anthropic message batch may hold."""


@dataclass(frozen=True)
class Answer:
    """A request's reply as the provider would have sent it online: status and body;
    ``counted`` when an earlier run collected this answer (and counted what it cost)."""

    status: int
    body: dict[str, Any]
    counted: bool = False


@dataclass(frozen=True)
class Lost:
    """A request that never ran (its batch expired, was cancelled, failed as a whole...), so
    it may be sent again; *reason* completes "the request ..."."""

    reason: str


def error_answer(provider: str, status: int, message: str) -> Answer:
    """A reply of *status* with *message*, in the provider's error shape.

    >>> error_answer("anthropic", 424, "gone").body["error"]["message"]
    'gone'
    """
    if provider == "anthropic":
        return Answer(status, {"type": "error", "error": {"type": "api_error", "message": message}})
    return Answer(status, {"error": {"message": message, "type": "batch_error"}})


@dataclass(frozen=True)
class BatchState:
    """What the provider says of a batch: its status word, whether it ended, its counts."""

    status: str
    ended: bool
    succeeded: int
    failed: int
    total: int


class BatchClient(Protocol):
    """One provider's batch API, at one address with one key."""

    provider: str
    limits: tuple[int, int]

    def size_of(self, custom_id: str, endpoint: str, body: Any) -> int:
        """The bytes one request takes in a batch (its line, or its entry)."""
        ...

    async def submit(self, model: str, endpoint: str, requests: list[tuple[str, Any]]) -> str:
        """Send (custom_id, body) requests as one batch; returns the batch id."""
        ...

    async def state(self, batch_id: str) -> BatchState:
        """The batch's status and counts."""
        ...

    async def results(self, batch_id: str, custom_ids: list[str]) -> dict[str, Answer | Lost]:
        """The outcome of each of *custom_ids* (once the batch ended); one the provider does
        not list is lost."""
        ...

    async def cancel(self, batch_id: str) -> None:
        """Ask the provider to stop the batch (answers already made are kept)."""
        ...

    async def close(self) -> None:
        """Close the client's connections."""
        ...


BATCH_PROVIDERS = ("openai", "anthropic")
"""The providers whose batch APIs batch mode covers."""


def check_batchable(model: Model) -> None:
    """Refuse batch mode for a model whose provider has no batch API we cover.

    >>> check_batchable(Model("ollama/llama3.1", batch=True))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    promptflow_dsl._errors.ModelSettingError: ollama/llama3.1: batch mode covers openai/ ...
    """
    provider = provider_of(model.name)
    if provider not in BATCH_PROVIDERS:
        message = (
            f"{model.name}: batch mode covers openai/ and anthropic/ models (their batch "
            f"APIs), not {provider}/; run this model online"
        )
        raise ModelSettingError(message)
    if provider == "anthropic":
        _anthropic_sdk()  # missing, it must stop the run here, not fail each row later


def _anthropic_sdk() -> Any:
    try:
        import anthropic
    except ImportError as exc:
        message = (
            "batch mode for anthropic/ models needs Anthropic's SDK: "
            "pip install 'promptflow_dsl[batch]'"
        )
        raise ModelSettingError(message) from exc
    return anthropic


def batch_client(provider: str, api_base: str | None, api_key: str | None) -> BatchClient:
    """The batch client of *provider* (``openai`` or ``anthropic``)."""
    if provider == "openai":
        return OpenAIBatches(api_base, api_key)
    if provider == "anthropic":
        return AnthropicBatches(api_base, api_key)
    message = f"batch mode covers openai/ and anthropic/ models, not {provider}/"
    raise ModelSettingError(message)


def _key(given: str | None, variable: str, provider: str) -> str:
    key = given or os.environ.get(variable)
    if not key:
        message = (
            f"batch mode for {provider}/ needs an API key: set {variable} or "
            "Model(api_key=...)"
        )
        raise ModelSettingError(message)
    return key


class OpenAIBatches:
    """OpenAI's Batch API: a JSONL file uploaded with purpose ``batch``, then a batch over it
    with a 24 h window; answers come back in an output file and an error file."""

    provider = "openai"
    limits = OPENAI_LIMITS

    def __init__(self, api_base: str | None, api_key: str | None) -> None:
        import openai

        key = _key(api_key, "OPENAI_API_KEY", self.provider)
        self._client = openai.AsyncOpenAI(api_key=key, base_url=api_base)

    def size_of(self, custom_id: str, endpoint: str, body: Any) -> int:
        return len(_openai_line(custom_id, endpoint, body)) + 1  # and its newline

    async def submit(self, model: str, endpoint: str, requests: list[tuple[str, Any]]) -> str:
        data = b"".join(_openai_line(cid, endpoint, body) + b"\n" for cid, body in requests)
        once = self._client.with_options(max_retries=0)  # a retried create could pay twice
        file = await self._client.files.create(
            file=("requests.jsonl", data, "application/jsonl"), purpose="batch"
        )
        batch = await once.batches.create(
            input_file_id=file.id,
            endpoint=endpoint,  # type: ignore[arg-type]
            completion_window="24h",
            metadata={"model": model[:512]},
        )
        return batch.id

    async def state(self, batch_id: str) -> BatchState:
        batch = await self._client.batches.retrieve(batch_id)
        counts = batch.request_counts
        done, failed, total = (
            (counts.completed, counts.failed, counts.total) if counts else (0, 0, 0)
        )
        ended = batch.status in ("completed", "failed", "expired", "cancelled")
        return BatchState(batch.status, ended, done, failed, total)

    async def results(self, batch_id: str, custom_ids: list[str]) -> dict[str, Answer | Lost]:
        batch = await self._client.batches.retrieve(batch_id)
        missing = Lost(f"is missing from the results of batch {batch_id}")
        outcomes: dict[str, Answer | Lost] = dict.fromkeys(custom_ids, missing)
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await self._client.files.content(file_id)
                for line in content.text.splitlines():
                    if line.strip():
                        entry = json.loads(line)
                        outcomes[entry["custom_id"]] = _openai_outcome(entry, batch_id)
        if batch.status == "failed":  # refused as a whole (a bad line, a full queue...)
            errors = batch.errors.data if batch.errors and batch.errors.data else []
            why = errors[0].message if errors else "no reason given"
            refused = Lost(f"was in batch {batch_id}, which {self.provider} refused: {why}")
            return dict.fromkeys(custom_ids, refused)
        return outcomes

    async def cancel(self, batch_id: str) -> None:
        await self._client.batches.cancel(batch_id)

    async def close(self) -> None:
        await self._client.close()


def _openai_line(custom_id: str, endpoint: str, body: Any) -> bytes:
    """One line of an OpenAI batch file."""
    line = {"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body}
    return json.dumps(line).encode()


def _openai_outcome(entry: dict[str, Any], batch_id: str) -> Answer | Lost:
    response, error = entry.get("response"), entry.get("error")
    if response:
        return Answer(int(response.get("status_code", 500)), response.get("body") or {})
    code = (error or {}).get("code", "")
    if code in ("batch_expired", "batch_cancelled"):
        return Lost(f"{code.removeprefix('batch_')} in batch {batch_id} before it ran")
    return Answer(400, {"error": error or {"message": "the batch returned no response"}})


_ANTHROPIC_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def anthropic_status(error: dict[str, Any]) -> int:
    """The HTTP status an Anthropic error body stands for (500 when its type is unknown)."""
    return _ANTHROPIC_STATUS.get(str((error.get("error") or {}).get("type")), 500)


class AnthropicBatches:
    """Anthropic's Message Batches: requests posted inline as ``{custom_id, params}``;
    results streamed back as JSONL, each succeeded, errored, canceled or expired."""

    provider = "anthropic"
    limits = ANTHROPIC_LIMITS

    def __init__(self, api_base: str | None, api_key: str | None) -> None:
        anthropic = _anthropic_sdk()
        key = _key(api_key, "ANTHROPIC_API_KEY", self.provider)
        self._client = anthropic.AsyncAnthropic(api_key=key, base_url=api_base)

    def size_of(self, custom_id: str, endpoint: str, body: Any) -> int:
        entry = {"custom_id": custom_id, "params": body}
        return len(json.dumps(entry).encode()) + 2  # and the comma and space between entries

    async def submit(self, model: str, endpoint: str, requests: list[tuple[str, Any]]) -> str:
        once = self._client.with_options(max_retries=0)  # a retried create could pay twice
        batch = await once.messages.batches.create(
            requests=[{"custom_id": cid, "params": body} for cid, body in requests]
        )
        return batch.id

    async def state(self, batch_id: str) -> BatchState:
        batch = await self._client.messages.batches.retrieve(batch_id)
        c = batch.request_counts
        total = c.processing + c.succeeded + c.errored + c.canceled + c.expired
        failed = c.errored + c.canceled + c.expired
        ended = batch.processing_status == "ended"
        return BatchState(batch.processing_status, ended, c.succeeded, failed, total)

    async def results(self, batch_id: str, custom_ids: list[str]) -> dict[str, Answer | Lost]:
        missing = Lost(f"is missing from the results of batch {batch_id}")
        outcomes: dict[str, Answer | Lost] = dict.fromkeys(custom_ids, missing)
        async for entry in await self._client.messages.batches.results(batch_id):
            result = entry.result
            if result.type == "succeeded":
                body = result.message.model_dump(mode="json", exclude_none=True)
                outcomes[entry.custom_id] = Answer(200, body)
            elif result.type == "errored":
                error = result.error.model_dump(mode="json", exclude_none=True)
                outcomes[entry.custom_id] = Answer(anthropic_status(error), error)
            else:  # "canceled" or "expired": it never ran
                lost = "cancelled" if result.type == "canceled" else "expired"
                outcomes[entry.custom_id] = Lost(f"{lost} in batch {batch_id} before it ran")
        return outcomes

    async def cancel(self, batch_id: str) -> None:
        await self._client.messages.batches.cancel(batch_id)

    async def close(self) -> None:
        await self._client.close()
