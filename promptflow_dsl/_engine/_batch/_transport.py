"""BatchTransport: LiteLLM's HTTP layer for a call in batch mode.

LiteLLM builds each request exactly as it would online (the body, the endpoint, the
provider's own format) and hands it to an HTTP client. In batch mode that client's
transport does not send it: it gives the body to the :class:`Batcher`, waits for the
batch's answer, and returns it as the HTTP response the request would have had. LiteLLM
and Instructor then read it as they read any reply, re-asks included, so a batch run and
an online run given the same replies produce the same rows.

A request's ``custom_id`` is its call's cache key (the content address and sample), cut to
40 characters, plus a hash of the body, so a validation re-ask (a longer conversation) is a
request of its own.

>>> batch_custom_id("ab" * 32, {"model": "m", "messages": []})
'abababababababababababababababababababab-f34244885bc2912271e2'
"""

from __future__ import annotations

import hashlib
import json
import os
from contextvars import ContextVar
from typing import Any

import httpx

from ._batcher import Batcher, Lane
from ._clients import Answer, error_answer

__all__ = ["COUNTED_HEADER", "BatchClients", "BatchTransport", "batch_custom_id", "batch_key"]

COUNTED_HEADER = "x-promptflow-counted"
"""Marks an answer that an earlier run collected and counted (its usage is not counted again)."""

batch_key: ContextVar[str] = ContextVar("promptflow_batch_key")
"""The cache key of the call whose requests the transport is given (set per call)."""

_ENDPOINTS = {  # the path a request ends with (after its client's base URL), its endpoint
    "/chat/completions": "/v1/chat/completions",  # OpenAI's base URL ends with /v1
    "/completions": "/v1/completions",
    "/v1/messages": "/v1/messages",  # Anthropic's is the server's root
}


def batch_custom_id(key: str, body: Any) -> str:
    """The id of one request in a batch: 40 characters of its call's key, then the body's
    hash (at most 64 characters of ``[a-z0-9-]``, as Anthropic requires)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{key[:40]}-{hashlib.sha256(canonical.encode()).hexdigest()[:20]}"


class BatchTransport(httpx.AsyncBaseTransport):
    """An httpx transport that answers each request from a provider batch."""

    def __init__(self, batcher: Batcher, provider: str) -> None:
        self.batcher, self.provider = batcher, provider

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(await request.aread())
        url = str(request.url)
        suffix = next(s for s in _ENDPOINTS if request.url.path.endswith(s))
        lane = Lane(
            self.provider,
            url[: url.rindex(suffix)],
            str(body.get("model", "")),
            _ENDPOINTS[suffix],
            _key_of(request),
        )
        custom_id = batch_custom_id(batch_key.get(), body)
        outcome = await self.batcher.answer(lane, custom_id, body)
        if isinstance(outcome, Answer):
            headers = {COUNTED_HEADER: "1"} if outcome.counted else None
            return httpx.Response(
                outcome.status, json=outcome.body, headers=headers, request=request
            )
        # It never ran: a transient status, so the engine's retry policy sends it again
        # (in a new batch) while attempts remain.
        lost = error_answer(self.provider, 408, f"the request {outcome.reason}")
        return httpx.Response(lost.status, json=lost.body, request=request)


def _key_of(request: httpx.Request) -> str:
    """The API key LiteLLM put on the request (it resolved the model's key and variables)."""
    bearer = request.headers.get("authorization", "")
    return request.headers.get("x-api-key") or bearer.removeprefix("Bearer ").strip()


class BatchClients:
    """The HTTP clients that LiteLLM is given for one batcher's calls, one per address.

    ``clients.for_call(provider, api_base, api_key)`` is what ``litellm.acompletion(client=...)``
    takes so that its request goes to a batch.
    """

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher
        self._clients: dict[tuple[str, str | None, str | None], Any] = {}
        self._http: list[httpx.AsyncClient] = []

    def for_call(self, provider: str, api_base: str | None, api_key: str | None) -> Any:
        """LiteLLM's client for a call to *provider* at *api_base* with *api_key*."""
        where = (provider, api_base, api_key)
        if where not in self._clients:
            self._clients[where] = self._make(provider, api_base, api_key)
        return self._clients[where]

    async def aclose(self) -> None:
        """Stop the batcher (its batches keep running) and close every client."""
        await self.batcher.aclose()
        for http in self._http:  # what the LiteLLM clients wrap
            await http.aclose()
        self._clients.clear()
        self._http.clear()

    def _make(self, provider: str, api_base: str | None, api_key: str | None) -> Any:
        http = httpx.AsyncClient(transport=BatchTransport(self.batcher, provider), timeout=None)
        self._http.append(http)
        if provider == "anthropic":
            from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

            handler = AsyncHTTPHandler()  # LiteLLM puts the address and key on each request
            handler.client = http
            return handler
        import openai

        return openai.AsyncOpenAI(
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "none",
            base_url=api_base or "https://api.openai.com/v1",
            http_client=http,
            max_retries=0,  # the engine retries
        )
