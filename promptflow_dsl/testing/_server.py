"""A loopback OpenAI-compatible server for testing prompt programs over real HTTP.

:class:`LoopbackServer` is a test double in the spirit of httpx's ``MockTransport``, one
level lower: it listens on ``127.0.0.1`` (a free port) in a background thread and speaks
enough of the OpenAI API (``POST /v1/chat/completions``, ``POST /v1/completions``,
``GET /v1/models``) for LiteLLM and Instructor to run unmodified against it. Replies are
scripted (a FIFO queue), computed by a *responder* callable, or fabricated
deterministically from the request (schema-valid JSON for structured calls, a few lines
of text otherwise). Latency and faults (429 with ``Retry-After``, 500, hangs, malformed
bodies) are drawn from a seeded RNG, and every request is recorded and counted.

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

import asyncio
import collections
import dataclasses
import hashlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from promptflow_dsl._fabricate import fabricate, fabricate_sentence

__all__ = [
    "Faults",
    "LoopbackServer",
    "RecordedRequest",
    "Reply",
    "ServerStats",
    "default_responder",
]

_log = logging.getLogger("promptflow_dsl.testing")

Endpoint = Literal["chat", "completions"]
Responder = Callable[["RecordedRequest"], "str | dict[str, Any] | Reply | None"]
"""A reply source: ``str``, ``dict``, :class:`Reply`, or ``None`` for the default reply."""
Latency = float | Callable[[random.Random], float]
"""Seconds per request, or a callable drawing them from the server's RNG."""

_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})
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


@dataclass(frozen=True)
class Reply:
    """One reply, fully specified.

    ``content`` is the assistant text (chat) or the completion text (completions);
    ``json`` is a JSON object result, delivered as a tool call when the request has
    ``tools`` and as the message content otherwise; ``raw_body`` is sent verbatim. A
    non-200 ``status`` without a body gets an OpenAI-style error body (``content``, if
    given, is its message). A 200 reply with none of the three gets the default
    responder's payload, so ``Reply(finish_reason="length")`` or ``Reply(delay=1.0)``
    only change what they name. ``delay`` (seconds) is added to the server's latency.
    """

    status: int = 200
    content: str | None = None
    json: dict[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    delay: float = 0.0
    raw_body: str | None = None
    finish_reason: str = "stop"

    def __post_init__(self) -> None:
        given = [n for n in ("content", "json", "raw_body") if getattr(self, n) is not None]
        if len(given) > 1:
            message = f"Reply takes at most one of content, json and raw_body, got {given}"
            raise ValueError(message)


@dataclass(frozen=True)
class Faults:
    """Random faults, decided per request by one uniform draw from the server's RNG.

    The rates are probabilities (their sum at most 1): a 429 carrying a ``Retry-After``
    header of ``retry_after`` seconds, a 500, a hang (``hang_seconds`` of silence, then a
    normal reply: the client's timeout should trip first) and a malformed 200 (a
    truncated JSON body). Scripted replies are never faulted.
    """

    rate_429: float = 0.0
    retry_after: float = 1.0
    rate_500: float = 0.0
    rate_hang: float = 0.0
    hang_seconds: float = 60.0
    rate_malformed: float = 0.0

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_500, self.rate_hang, self.rate_malformed)
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0 + 1e-9:
            message = f"fault rates must be in [0, 1] and sum to at most 1, got {rates}"
            raise ValueError(message)

    def pick(self, u: float) -> str | None:
        """The fault for a uniform draw *u* in [0, 1): a name, or None for a normal reply."""
        for name, rate in (
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("hang", self.rate_hang),
            ("malformed", self.rate_malformed),
        ):
            if u < rate:
                return name
            u -= rate
        return None


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of the server's counters (completion endpoints only).

    ``requests`` counts arrivals, ``in_flight`` those not yet answered (latency and
    hangs included), ``max_in_flight`` its high-water mark, ``by_status`` the responses
    sent per HTTP status and ``by_endpoint`` the arrivals per endpoint.
    """

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_endpoint: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server received it (credentials removed from the headers).

    ``headers`` has lower-cased names. ``text`` joins every message's content (chat) or
    the prompt (completions), which is handy for asserting what a prompt said.
    """

    endpoint: Endpoint
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All message contents, or the prompt, joined with newlines."""
        if self.endpoint == "completions":
            prompt = self.body.get("prompt", "")
            if isinstance(prompt, list):
                return "\n".join(p for p in prompt if isinstance(p, str))
            return prompt if isinstance(prompt, str) else ""
        parts: list[str] = []
        for message in self.body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(p["text"] for p in content if isinstance(p, dict) and "text" in p)
        return "\n".join(parts)


# ---------------------------------------------------------------------------------------
# The default responder


def _request_seed(request: RecordedRequest) -> int:
    key = request.body.get("messages" if request.endpoint == "chat" else "prompt")
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _find_schema(text: str) -> dict[str, Any] | None:
    """The first balanced JSON object in *text* that parses and has ``properties``."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict) and "properties" in value:
            return value
    return None


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
    found = _find_schema(request.text)
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
    seed = _request_seed(request) + choice
    context = request.text
    schema = _structured_schema(request)
    if schema is not None:
        value = fabricate(schema, seed=seed, context=context)
        return value if isinstance(value, dict) else {"result": value}
    rng = random.Random(seed)
    return "\n".join(fabricate_sentence(rng, context) for _ in range(3))


# ---------------------------------------------------------------------------------------
# Response bodies


def _estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4 if text else 0


def _as_reply(item: Any) -> Reply:
    if isinstance(item, Reply):
        return item
    if isinstance(item, str):
        return Reply(content=item)
    if isinstance(item, dict):
        return Reply(json=item)
    message = f"a scripted reply must be a str, a dict or a Reply, not {type(item).__name__}"
    raise TypeError(message)


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    default, kind = _ERROR_MESSAGES.get(status, (f"HTTP {status}.", "api_error"))
    code = kind if status in (408, 429) else None
    return {"error": {"message": message or default, "type": kind, "param": None, "code": code}}


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
    prompt_tokens = _estimate_tokens(request.text)
    completion_tokens = sum(_estimate_tokens(_choice_text(c)) for c in choices)
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
    request: RecordedRequest, choices: list[_Choice], number: int
) -> list[dict[str, Any]]:
    """The server-sent events of a streamed reply (without the final ``[DONE]``)."""
    full = _completion_body(request, choices, number)
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
    if isinstance(options, dict) and options.get("include_usage"):
        events.append({**base, "object": obj, "choices": [], "usage": full["usage"]})
    return events


def _http(
    status: int,
    body: str | dict[str, Any],
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
) -> Any:
    from aiohttp import web

    text = body if isinstance(body, str) else json.dumps(body)
    merged = {"Content-Type": content_type}
    for name, value in (headers or {}).items():
        if name.lower() == "content-type":
            merged.pop("Content-Type")
        merged[name] = str(value)
    return web.Response(status=status, body=text.encode(), headers=merged)


def _render(recorded: RecordedRequest, reply: Reply, number: int, *, malformed: bool) -> Any:
    """The HTTP response for *reply* to *recorded*."""
    if reply.raw_body is not None:
        return _http(reply.status, reply.raw_body, reply.headers)
    if reply.status != 200:
        body = reply.json if reply.json is not None else _error_body(reply.status, reply.content)
        return _http(reply.status, body, reply.headers)
    n = recorded.body.get("n") or 1
    n = n if isinstance(n, int) and 1 <= n <= 128 else 1
    payloads: list[str | dict[str, Any]]
    if reply.content is not None:
        payloads = [reply.content] * n
    elif reply.json is not None:
        payloads = [reply.json] * n
    else:
        payloads = [default_responder(recorded, i) for i in range(n)]
    choices = [_make_choice(recorded, p, reply.finish_reason, i) for i, p in enumerate(payloads)]
    if malformed:
        text = json.dumps(_completion_body(recorded, choices, number))
        return _http(200, text[: len(text) // 2], reply.headers)
    if recorded.body.get("stream"):
        events = _stream_events(recorded, choices, number)
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return _http(200, text, reply.headers, content_type="text/event-stream")
    return _http(200, _completion_body(recorded, choices, number), reply.headers)


# ---------------------------------------------------------------------------------------
# The server


class LoopbackServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1, running in a background thread.

    ``latency`` is seconds per request, or a callable drawing them from the server's
    ``random.Random(seed)``; ``faults`` injects random errors (:class:`Faults`);
    ``responder`` computes replies (``str``, ``dict``, :class:`Reply`, or ``None`` for
    the default) when the script queue is empty; it runs on the server's event loop, so
    it should be quick (``Reply(delay=...)`` is the way to be slow). Use it as a context
    manager, or call :meth:`start` and :meth:`stop`. Counters and recordings cover the
    two completion endpoints; a body that is not JSON gets a 400, counted, not recorded.
    With ``n`` > 1 a scripted or responder reply fills every choice, while the default
    responder fabricates one per choice.
    """

    def __init__(
        self,
        latency: Latency = 0.0,
        faults: Faults | None = None,
        seed: int = 0,
        responder: Responder | None = None,
    ) -> None:
        self.latency = latency
        self.faults = faults
        self.seed = seed
        self.responder = responder
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._queue: collections.deque[Reply] = collections.deque()
        self._requests: list[RecordedRequest] = []
        self._counts = ServerStats()
        self._number = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._runner: Any = None
        self._port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> LoopbackServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread; returns self."""
        if self._thread is not None:
            message = "the loopback server is already running"
            raise RuntimeError(message)
        from aiohttp import web

        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def startup() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            for prefix in ("/v1", ""):
                app.router.add_post(prefix + "/chat/completions", self._handle_chat)
                app.router.add_post(prefix + "/completions", self._handle_completions)
                app.router.add_get(prefix + "/models", self._handle_models)
            runner = web.AppRunner(
                app,
                handle_signals=False,
                access_log=None,
                handler_cancellation=True,
                shutdown_timeout=0.5,
            )
            await runner.setup()
            self._runner = runner
            self._stopping = asyncio.Event()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            self._port = runner.addresses[0][1]

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(startup())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        thread = threading.Thread(target=run, name="promptflow-loopback-server", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Stop serving; requests still in flight are cut short. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout=5.0)
        except Exception:  # stopping must not fail a test's teardown
            _log.exception("loopback server did not shut down cleanly")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5.0)
        self._loop = self._thread = None
        self._runner = self._stopping = None
        self._port = None

    async def _shutdown(self) -> None:
        assert self._stopping is not None
        self._stopping.set()  # wakes every sleeping handler
        await self._runner.cleanup()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "stopped"
        return f"<LoopbackServer {where}>"

    # -- public state ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._port is None:
            message = "the loopback server is not running; call start() or use `with`"
            raise RuntimeError(message)
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the ``api_base`` to give LiteLLM."""
        return self.url + "/v1"

    def script(self, replies: Iterable[str | dict[str, Any] | Reply]) -> None:
        """Queue replies, served first in, first out before the responder is asked.

        A ``str`` is ``Reply(content=s)``, a ``dict`` is ``Reply(json=d)``.
        """
        converted = [_as_reply(item) for item in replies]
        with self._lock:
            self._queue.extend(converted)

    @property
    def stats(self) -> ServerStats:
        """A snapshot of the counters."""
        with self._lock:
            c = self._counts
            return dataclasses.replace(
                c, by_status=dict(c.by_status), by_endpoint=dict(c.by_endpoint)
            )

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Clear the script queue, the counters and the recorded requests; reseed the RNG.

        Requests still in flight stay counted in ``in_flight``.
        """
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            busy = self._counts.in_flight
            self._counts = ServerStats(in_flight=busy, max_in_flight=busy)
            self._rng = random.Random(self.seed)

    # -- request handling (on the server's loop) --------------------------------------

    async def _handle_chat(self, request: Any) -> Any:
        return await self._handle(request, "chat")

    async def _handle_completions(self, request: Any) -> Any:
        return await self._handle(request, "completions")

    async def _handle_models(self, request: Any) -> Any:
        model = {"id": "test-model", "object": "model", "created": 0, "owned_by": "loopback"}
        return _http(200, {"object": "list", "data": [model]})

    def _arrive(self, endpoint: Endpoint, recorded: RecordedRequest | None) -> int:
        with self._lock:
            c = self._counts
            by_endpoint = {**c.by_endpoint, endpoint: c.by_endpoint.get(endpoint, 0) + 1}
            busy = c.in_flight + 1
            self._counts = dataclasses.replace(
                c,
                requests=c.requests + 1,
                in_flight=busy,
                max_in_flight=max(c.max_in_flight, busy),
                by_endpoint=by_endpoint,
            )
            if recorded is not None:
                self._requests.append(recorded)
            self._number += 1
            return self._number

    def _leave(self, status: int | None) -> None:
        with self._lock:
            c = self._counts
            by_status = dict(c.by_status)
            if status is not None:
                by_status[status] = by_status.get(status, 0) + 1
            self._counts = dataclasses.replace(
                c, in_flight=max(0, c.in_flight - 1), by_status=by_status
            )

    async def _handle(self, request: Any, endpoint: Endpoint) -> Any:
        raw = await request.read()
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            body = None
        headers = {
            k.lower(): v for k, v in request.headers.items() if k.lower() not in _SECRET_HEADERS
        }
        recorded = RecordedRequest(endpoint, body, headers) if body is not None else None
        number = self._arrive(endpoint, recorded)
        left = False
        try:
            if recorded is None:
                response = _http(400, _error_body(400, "The body is not a JSON object."))
            else:
                response = await self._respond(recorded, number)
            # Counted as answered before the bytes go out, so a client that has its
            # reply never sees its own request still in flight.
            self._leave(response.status)
            left = True
            await response.prepare(request)
            await response.write_eof()
            return response
        finally:
            if not left:
                self._leave(None)

    def _draw(self) -> tuple[float, Reply | None, str | None]:
        """Per request: the latency, the next scripted reply, else the fault (if any)."""
        with self._lock:
            latency = self.latency(self._rng) if callable(self.latency) else self.latency
            scripted = self._queue.popleft() if self._queue else None
            fault = None
            if self.faults is not None and scripted is None:
                fault = self.faults.pick(self._rng.random())
            return max(0.0, float(latency)), scripted, fault

    async def _respond(self, recorded: RecordedRequest, number: int) -> Any:
        latency, reply, fault = self._draw()
        faults = self.faults or Faults()
        if fault == "429":
            seconds = faults.retry_after
            shown = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
            reply = Reply(status=429, headers={"Retry-After": shown})
        elif fault == "500":
            reply = Reply(status=500)
        elif fault == "hang":
            latency += faults.hang_seconds
        if reply is None:
            try:
                reply = self._ask_responder(recorded)
            except Exception as exc:
                _log.exception("loopback responder failed")
                reply = Reply(status=500, content=f"loopback responder failed: {exc!r}")
        await self._sleep(latency + max(0.0, reply.delay if reply else 0.0))
        if self._stopping is not None and self._stopping.is_set():
            return _http(503, _error_body(503, "The loopback server is stopping."))
        return _render(recorded, reply or Reply(), number, malformed=fault == "malformed")

    def _ask_responder(self, recorded: RecordedRequest) -> Reply | None:
        if self.responder is None:
            return None
        answer = self.responder(recorded)
        return None if answer is None else _as_reply(answer)

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0 or self._stopping is None:
            return
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass
