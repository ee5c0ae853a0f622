"""A loopback OpenAI-compatible server for testing prompt programs over real HTTP.

:class:`LoopbackServer` is a test double in the spirit of httpx's ``MockTransport``, one
level lower: it listens on ``127.0.0.1`` (a free port) in a background thread and speaks
enough of the OpenAI API (``POST /v1/chat/completions``, ``POST /v1/completions``,
``POST /v1/embeddings``, ``GET /v1/models``) for LiteLLM and Instructor to run unmodified
against it. Replies are
scripted (a FIFO queue), computed by a *responder* callable, or fabricated
deterministically from the request (schema-valid JSON for structured calls, a few lines
of text otherwise; embeddings are hashed character trigrams, so near-duplicate texts get
near vectors). Latency and faults (429 with ``Retry-After``, 500, hangs, malformed
bodies) are drawn from a seeded RNG, and every request is recorded and counted.
:class:`~promptflow_dsl.testing.Quirks` make it behave like self-hosted servers that
differ from OpenAI (no tool support, fenced JSON, no usage).

>>> import json, urllib.request
>>> from promptflow_dsl.testing import LoopbackServer
>>> with LoopbackServer() as server:
...     server.script(["hello"])
...     body = {"model": "any", "messages": [{"role": "user", "content": "Hi!"}]}
...     request = urllib.request.Request(
...         server.api_base + "/chat/completions", data=json.dumps(body).encode(),
...         headers={"Content-Type": "application/json"})
...     with urllib.request.urlopen(request) as response:
...         reply = json.load(response)
...     print(reply["choices"][0]["message"]["content"], server.stats.requests)
hello 1

With the library, point a model at the server; any ``openai/<name>`` model string works
for chat (``text-completion-openai/<name>`` reaches ``/v1/completions``)::

    with LoopbackServer(latency=0.05, faults=Faults(rate_429=0.1)) as server:
        model = Model("openai/test-model", api_base=server.api_base, api_key="sk-test")
        server.script([{"instructions": ["Explain erosion."]}])
        assert self_instruct("Rivers.", model=model).instructions == ["Explain erosion."]

The pytest plugin shipped with the package provides a ``loopback_server`` fixture.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptflow_dsl._vectors import DEFAULT_DIMENSIONS, hashed_embedding
from promptflow_dsl.testing._base import (
    Ask,
    Faults,
    Latency,
    Out,
    RecordedRequest,
    Reply,
    Responder,
    ServerStats,
    estimate_tokens,
    fabricate_answer,
    find_schema,
)
from promptflow_dsl.testing._batches import BatchPlan
from promptflow_dsl.testing._openai_batches import OpenAIBatches
from promptflow_dsl.testing._quirks import Quirks, fence

__all__ = [
    "Faults",
    "LoopbackServer",
    "RecordedRequest",
    "Reply",
    "ServerStats",
    "default_responder",
]

_ERROR_MESSAGES = {
    400: ("Bad request.", "invalid_request_error"),
    401: ("Incorrect API key provided.", "invalid_request_error"),
    403: ("Permission denied.", "permission_error"),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error"),
    408: ("Request timed out.", "timeout"),
    429: ("Rate limit reached for requests. Please try again later.", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error"),
    502: ("Bad gateway.", "server_error"),
    503: ("The server is overloaded or not ready yet.", "server_error"),
}


# ---------------------------------------------------------------------------------------
# The default responder


def _tool_parameters(body: Mapping[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    if not tools:
        return None
    wanted = _tool_name(body)
    for tool in tools:
        function = tool.get("function", {}) if isinstance(tool, dict) else {}
        if function.get("name") == wanted:
            return function.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "object", "properties": {}}


def _tool_name(body: Mapping[str, Any]) -> str:
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if name:
            return str(name)
    tools = body.get("tools") or [{}]
    first = tools[0] if isinstance(tools[0], dict) else {}
    return str(first.get("function", {}).get("name", "function"))


def _structured_schema(request: RecordedRequest) -> dict[str, Any] | None:
    body = request.body
    parameters = _tool_parameters(body)
    if parameters is not None:
        return parameters
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema" and isinstance(response_format, dict):
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return schema
    found = find_schema(request.text)
    if found is not None:
        return found
    if kind in ("json_object", "json_schema"):
        return {"type": "object", "properties": {"result": {"type": "string"}}}
    return None


def default_responder(request: RecordedRequest, choice: int = 0) -> str | dict[str, Any]:
    """The reply the server fabricates when nothing is scripted and no responder is set.

    Deterministic per request (seeded by a SHA-256 of the messages or prompt, plus the
    *choice* index): a schema-valid object when the request asks for structured output
    (``tools``, a ``response_format``, or a JSON schema in the prompt, as Instructor's
    JSON modes send it), else three lines of text made from the prompt's words.
    """
    ask = Ask(_structured_schema(request), forced=True)
    return fabricate_answer(request, ask, choice=choice)


# ---------------------------------------------------------------------------------------
# Response bodies


@dataclass
class _Choice:
    content: str | None
    tool_call: dict[str, Any] | None
    finish_reason: str


def _make_choice(
    request: RecordedRequest, payload: str | dict[str, Any], finish_reason: str, index: int
) -> _Choice:
    if isinstance(payload, str):
        return _Choice(payload, None, finish_reason)
    arguments = json.dumps(payload)
    if request.endpoint == "chat" and request.body.get("tools"):
        digest = hashlib.sha256(f"{arguments}/{index}".encode()).hexdigest()[:24]
        call = {
            "id": f"call_{digest}",
            "type": "function",
            "function": {"name": _tool_name(request.body), "arguments": arguments},
        }
        reason = "tool_calls" if finish_reason == "stop" else finish_reason
        return _Choice(None, call, reason)
    return _Choice(arguments, None, finish_reason)


def _choice_text(choice: _Choice) -> str:
    return choice.content or (choice.tool_call or {}).get("function", {}).get("arguments", "")


def _completion_body(
    request: RecordedRequest, choices: list[_Choice], number: int
) -> dict[str, Any]:
    prompt_tokens = estimate_tokens(request.text)
    completion_tokens = sum(estimate_tokens(_choice_text(c)) for c in choices)
    model = request.body.get("model") or "loopback"
    common = {"created": int(time.time()), "model": model}
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if request.endpoint == "completions":
        return {
            "id": f"cmpl-loopback{number}",
            "object": "text_completion",
            **common,
            "choices": [
                {
                    "index": i,
                    "text": _choice_text(c),
                    "finish_reason": c.finish_reason,
                    "logprobs": None,
                }
                for i, c in enumerate(choices)
            ],
            "usage": usage,
        }
    out_choices = []
    for i, c in enumerate(choices):
        message: dict[str, Any] = {"role": "assistant", "content": c.content}
        if c.tool_call is not None:
            message["tool_calls"] = [c.tool_call]
        out_choices.append(
            {"index": i, "message": message, "finish_reason": c.finish_reason, "logprobs": None}
        )
    return {
        "id": f"chatcmpl-loopback{number}",
        "object": "chat.completion",
        **common,
        "choices": out_choices,
        "usage": usage,
    }


def _stream_events(
    request: RecordedRequest,
    choices: list[_Choice],
    full: Mapping[str, Any],
    *,
    with_usage: bool = True,
) -> list[dict[str, Any]]:
    """The server-sent events of a streamed reply (without the final ``[DONE]``), cut from
    the *full* reply body."""
    base = {k: full[k] for k in ("id", "created", "model")}
    events: list[dict[str, Any]] = []
    chat = request.endpoint == "chat"
    obj = "chat.completion.chunk" if chat else "text_completion"
    for i, c in enumerate(choices):
        pieces = re.findall(r"\S+\s*|\s+", c.content or "")
        if chat:
            deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
            deltas += [{"content": p} for p in pieces]
            if c.tool_call is not None:
                deltas.append({"tool_calls": [{"index": 0, **c.tool_call}]})
            for delta in deltas:
                choice = {"index": i, "delta": delta, "finish_reason": None, "logprobs": None}
                events.append({**base, "object": obj, "choices": [choice]})
            done = {"index": i, "delta": {}, "finish_reason": c.finish_reason, "logprobs": None}
        else:
            for p in pieces:
                choice = {"index": i, "text": p, "finish_reason": None, "logprobs": None}
                events.append({**base, "object": obj, "choices": [choice]})
            done = {"index": i, "text": "", "finish_reason": c.finish_reason, "logprobs": None}
        events.append({**base, "object": obj, "choices": [done]})
    options = request.body.get("stream_options") or {}
    if with_usage and isinstance(options, dict) and options.get("include_usage"):
        events.append({**base, "object": obj, "choices": [], "usage": full["usage"]})
    return events


# ---------------------------------------------------------------------------------------
# Embeddings (``POST /v1/embeddings``)

_MAX_DIMENSIONS = 4096


def _embedding_inputs(body: Mapping[str, Any]) -> list[str] | str:
    """The texts to embed, or why the request is refused (as OpenAI's 400 would say)."""
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return "'input' must be a string or a non-empty list of strings"
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    if not isinstance(dimensions, int) or not 1 <= dimensions <= _MAX_DIMENSIONS:
        return f"'dimensions' must be an integer from 1 to {_MAX_DIMENSIONS}"
    if body.get("encoding_format", "float") not in ("float", "base64"):
        return "'encoding_format' must be 'float' or 'base64'"
    return texts


def _embedding_body(body: Mapping[str, Any], texts: list[str]) -> dict[str, Any]:
    """OpenAI's embeddings list: one hashed embedding per text, as float32 values (plain
    numbers, or base64 of little-endian float32 as the OpenAI SDK asks by default)."""
    import numpy as np

    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    data = []
    for index, text in enumerate(texts):
        vector = np.asarray(hashed_embedding(text, dimensions), dtype="<f4")
        encoded: Any = (
            base64.b64encode(vector.tobytes()).decode()
            if body.get("encoding_format") == "base64"
            else vector.tolist()
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(estimate_tokens(text) for text in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    model = body.get("model") or "loopback"
    return {"object": "list", "data": data, "model": model, "usage": usage}


# ---------------------------------------------------------------------------------------
# The server


class LoopbackServer(OpenAIBatches):
    """An OpenAI-compatible HTTP server on 127.0.0.1, running in a background thread.

    ``latency`` is seconds per request, or a callable drawing them from the server's
    ``random.Random(seed)``; ``faults`` injects random errors (:class:`Faults`);
    ``responder`` computes replies (``str``, ``dict``, :class:`Reply`, or ``None`` for
    the default) when the script queue is empty; it runs on the server's event loop, so
    it should be quick (``Reply(delay=...)`` is the way to be slow). ``quirks`` makes it
    behave like a self-hosted server that differs from OpenAI (:class:`Quirks`), and
    ``port`` fixes the port (0: a free one). Use it as a context manager, or call
    :meth:`start` and :meth:`stop`. A body that is not JSON gets a 400, counted, not
    recorded; an unknown path gets OpenAI's 404, counted as endpoint ``"unknown"``. With
    ``n`` > 1 a scripted or responder reply fills every choice, while the default
    responder fabricates one per choice. ``POST /v1/embeddings`` answers with
    :func:`~promptflow_dsl._vectors.hashed_embedding` vectors (256 numbers unless the
    request sets ``dimensions``), under the same script, latency and faults; a scripted
    reply's status, headers and delay apply to it, its text or JSON does not. OpenAI's
    Batch API (``/v1/files``, ``/v1/batches``) runs batches as ``batches`` plans them
    (:class:`~promptflow_dsl.testing.BatchPlan`; assign ``batch_plan`` to change it).
    """

    provider = "openai"
    title = "OpenAI-compatible server"
    api_path = "/v1"

    def __init__(
        self,
        latency: Latency = 0.0,
        faults: Faults | None = None,
        seed: int = 0,
        responder: Responder | None = None,
        *,
        quirks: Quirks | None = None,
        batches: BatchPlan | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(latency, faults, seed, responder, port=port)
        self.quirks = quirks or Quirks()
        self._init_batches(batches)

    def _add_routes(self, app: Any) -> None:
        for prefix in ("/v1", ""):
            self._route(app, "POST", prefix + "/chat/completions", "chat")
            self._route(app, "POST", prefix + "/completions", "completions")
            self._route(app, "POST", prefix + "/embeddings", "embeddings")
            app.router.add_get(prefix + "/models", self._handle_models)
        self._add_batch_routes(app)

    async def _handle_models(self, request: Any) -> Any:
        model = {"id": "test-model", "object": "model", "created": 0, "owned_by": "loopback"}
        return Out(200, {"object": "list", "data": [model]}).response()

    def _error_body(self, status: int, message: str | None) -> dict[str, Any]:
        default, kind = _ERROR_MESSAGES.get(status, (f"HTTP {status}.", "api_error"))
        code = kind if status in (408, 429) else None
        return {"error": {"message": message or default, "type": kind, "param": None, "code": code}}

    def _not_found(self, method: str, path: str) -> Out:
        return self._error(404, f"Invalid URL ({method} {path})")

    def _refuse(self, recorded: RecordedRequest, request: Any) -> Out | None:
        return self._refuse_line(recorded)

    def _refuse_line(self, recorded: RecordedRequest) -> Out | None:
        reason = self.quirks.refusal(recorded.body) if recorded.endpoint == "chat" else None
        if reason is None:
            return None
        return Out(self.quirks.tools_error_status, self.quirks.refusal_body(reason))

    def _render(self, recorded: RecordedRequest, reply: Reply, number: int) -> Out:
        if recorded.endpoint == "embeddings":
            return self._render_embeddings(recorded, reply)
        n = recorded.body.get("n") or 1
        n = n if isinstance(n, int) and 1 <= n <= 128 else 1
        payloads: list[str | dict[str, Any]]
        if reply.content is not None:
            payloads = [reply.content] * n
        elif reply.json is not None:
            payloads = [reply.json] * n
        else:
            payloads = [default_responder(recorded, i) for i in range(n)]
        if self.quirks.fenced_json and recorded.endpoint == "chat":
            payloads = [p if isinstance(p, str) else fence(p) for p in payloads]
        choices = [
            _make_choice(recorded, p, reply.finish_reason, i) for i, p in enumerate(payloads)
        ]
        with_usage = not self.quirks.omits_usage
        body = _completion_body(recorded, choices, number)
        self._bill(body["usage"])
        if recorded.body.get("stream"):
            events = _stream_events(recorded, choices, body, with_usage=with_usage)
            text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            return Out(200, text, reply.headers, content_type="text/event-stream")
        if not with_usage:
            body.pop("usage")
        return Out(200, body, reply.headers)

    def _render_embeddings(self, recorded: RecordedRequest, reply: Reply) -> Out:
        """The embeddings of the request's texts (a scripted reply's text or JSON is not
        used: the vectors are always computed, so they stay deterministic)."""
        texts = _embedding_inputs(recorded.body)
        if isinstance(texts, str):
            return self._error(400, texts)
        body = _embedding_body(recorded.body, texts)
        self._bill({"prompt_tokens": body["usage"]["prompt_tokens"], "completion_tokens": 0})
        if self.quirks.omits_usage:
            body.pop("usage")
        return Out(200, body, reply.headers)
