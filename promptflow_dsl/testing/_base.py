"""What every provider emulator shares: lifecycle, script, faults, recording and fabrication.

An emulator is an HTTP server on ``127.0.0.1`` in a background thread that speaks one
provider's wire format. The provider modules (``_server.py`` for OpenAI, ``_anthropic.py``,
``_ollama.py``, ``_gemini.py``) only say which paths they serve, how a request asks for
structure (:class:`Ask`), how a reply is written, and how an error looks; everything else
(scripted replies, the seeded RNG, latency, faults, counters, recorded requests) lives here.
The native emulators (all but OpenAI's) also share :class:`NativeEmulator`: a model that may
stray from a schema it is not forced to follow.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from promptflow_dsl._engine._salvage import json_objects
from promptflow_dsl._fabricate import fabricate, fabricate_sentence

__all__ = [
    "Ask",
    "Emulator",
    "Faults",
    "NativeEmulator",
    "RecordedRequest",
    "Reply",
    "ServerStats",
    "Unforced",
    "fabricate_answer",
    "find_schema",
]

_log = logging.getLogger("promptflow_dsl.testing")

Responder = Callable[["RecordedRequest"], "str | dict[str, Any] | Reply | None"]
"""A reply source: ``str``, ``dict``, :class:`Reply`, or ``None`` for the default reply."""
Latency = float | Callable[[random.Random], float]
"""Seconds per request, or a callable drawing them from the server's RNG."""
Unforced = Literal["comply", "stray"]
"""What an emulated model does when the request states a schema but does not force it."""
_E = TypeVar("_E", bound="Emulator")

# Headers that carry credentials, per provider: never recorded.
_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "x-goog-api-key"})


@dataclass(frozen=True)
class Reply:
    """One reply, fully specified.

    ``content`` is the assistant text; ``json`` is a JSON object result, delivered as a
    tool call when the request offers tools and as the text otherwise; ``raw_body`` is sent
    verbatim. A non-200 ``status`` without a body gets an error body in the provider's own
    shape (``content``, if given, is its message). A 200 reply with none of the three gets
    the default reply, so ``Reply(finish_reason="length")`` or ``Reply(delay=1.0)`` only
    change what they name (``"length"`` is written the provider's way: ``max_tokens``,
    ``MAX_TOKENS``...). ``delay`` (seconds) is added to the server's latency.
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

    The rates are probabilities (their sum at most 1): a 429 carrying the provider's retry
    signal of ``retry_after`` seconds (a ``Retry-After`` header; Gemini's ``RetryInfo`` in
    the body), a 500, a hang (``hang_seconds`` of silence, then a normal reply: the client's
    timeout should trip first), a malformed 200 (a truncated body) and an overload (529
    ``overloaded_error`` on Anthropic, 503 elsewhere). Every error is written in the
    provider's own shape. Scripted replies are never faulted.
    """

    rate_429: float = 0.0
    retry_after: float = 1.0
    rate_500: float = 0.0
    rate_hang: float = 0.0
    hang_seconds: float = 60.0
    rate_malformed: float = 0.0
    rate_overloaded: float = 0.0

    def __post_init__(self) -> None:
        rates = self._rates()
        values = tuple(rate for _, rate in rates)
        if any(not 0.0 <= r <= 1.0 for r in values) or sum(values) > 1.0 + 1e-9:
            message = f"fault rates must be in [0, 1] and sum to at most 1, got {values}"
            raise ValueError(message)

    def _rates(self) -> tuple[tuple[str, float], ...]:
        # New kinds go last, so a seed draws the same faults as before they existed.
        return (
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("hang", self.rate_hang),
            ("malformed", self.rate_malformed),
            ("overloaded", self.rate_overloaded),
        )

    def pick(self, u: float) -> str | None:
        """The fault for a uniform draw *u* in [0, 1): a name, or None for a normal reply."""
        for name, rate in self._rates():
            if u < rate:
                return name
            u -= rate
        return None

    @property
    def retry_after_text(self) -> str:
        """``retry_after`` as a header value: ``"2"``, or ``"0.5"``."""
        seconds = float(self.retry_after)
        return str(int(seconds)) if seconds.is_integer() else str(seconds)


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of the server's counters.

    ``requests`` counts arrivals at the completion endpoints and at unknown paths (those
    get the provider's 404), ``in_flight`` those not yet answered (latency and hangs
    included), ``max_in_flight`` its high-water mark, ``by_status`` the responses sent per
    HTTP status and ``by_endpoint`` the arrivals per endpoint (``"unknown"`` for a path
    the provider does not serve). ``billed_input_tokens`` and ``billed_output_tokens`` add
    up the usage that the 200 replies reported, what a provider would bill (the OpenAI
    loopback server counts them, whether or not a quirk leaves them out of the reply),
    batched requests included. ``batches_created`` counts the batches submitted to a
    batch API and ``batch_requests`` the requests in them; batched requests are not
    counted in ``requests`` nor recorded.
    """

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_endpoint: dict[str, int] = field(default_factory=dict)
    billed_input_tokens: int = 0
    billed_output_tokens: int = 0
    batches_created: int = 0
    batch_requests: int = 0


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server received it (credentials removed).

    ``endpoint`` names what was called: ``"chat"`` or ``"completions"`` (OpenAI),
    ``"messages"`` (Anthropic), ``"chat"`` or ``"generate"`` (Ollama),
    ``"generateContent"`` (Gemini), ``"unknown"`` for a path the provider does not serve.
    ``headers`` has lower-cased names and no credential header; ``path`` is the URL path
    without the query string (where Gemini may carry its key). ``text`` joins every piece
    of prompt text in the body, whatever the provider's shape, which is handy for
    asserting what a prompt said.
    """

    endpoint: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    provider: str = "openai"
    path: str = ""

    @property
    def text(self) -> str:
        """System text, then every message's text (or the prompt), joined with newlines."""
        pieces: list[str] = []
        for key in _TEXT_KEYS:
            pieces.extend(_strings(self.body.get(key)))
        return "\n".join(pieces)


# Where prompt text sits: OpenAI and Ollama use messages (and Ollama's generate a system
# and a prompt), Anthropic a system and messages of blocks, Gemini a systemInstruction
# and contents of parts.
_TEXT_KEYS = ("system", "systemInstruction", "system_instruction", "messages", "contents", "prompt")


def _strings(value: Any) -> list[str]:
    """The text in *value*: a string, a list of them, or messages, blocks and parts."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return [value["text"]]
        for key in ("content", "parts"):
            if key in value:
                return _strings(value[key])
    return []


# ---------------------------------------------------------------------------------------
# What a request asks for, and the fabricated answer


@dataclass(frozen=True)
class Ask:
    """What a request asks the model for, read in the provider's own terms.

    ``schema`` is the structure wanted (from a tool, a response format or the prompt),
    ``tool`` the tool to answer through (None: answer in the text), and ``forced`` whether
    the provider itself guarantees it (a forced tool choice, a schema in ``format`` or
    ``responseSchema``), as opposed to a schema only stated in the prompt or a JSON-only mode.
    """

    schema: dict[str, Any] | None = None
    tool: str | None = None
    forced: bool = False


def request_seed(request: RecordedRequest) -> int:
    """A seed from the conversation in *request*: the same prompt, the same fabrication."""
    keys = [k for k in _TEXT_KEYS if k in request.body]
    key = request.body[keys[0]] if len(keys) == 1 else [request.body[k] for k in keys]
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def find_schema(text: str) -> dict[str, Any] | None:
    """The first balanced JSON object in *text* that parses and has ``properties``.

    >>> find_schema('Answer as {"properties": {"a": {"type": "string"}}} please')
    {'properties': {'a': {'type': 'string'}}}
    """
    return next((value for value in json_objects(text) if "properties" in value), None)


def fabricate_answer(
    request: RecordedRequest, ask: Ask, *, unforced: Unforced = "comply", choice: int = 0
) -> str | dict[str, Any]:
    """A deterministic answer to *request*: an object for *ask*'s schema, else three lines.

    A forced schema is always met. An unforced one is met when *unforced* is
    ``"comply"``; with ``"stray"`` the model strays as real ones do: it answers in prose
    when a tool was only offered, and otherwise writes JSON that misses the schema's
    first required field.

    >>> asked = RecordedRequest("chat", {"messages": [{"role": "user", "content": "Hi"}]})
    >>> schema = {"type": "object", "properties": {"n": {"type": "integer"}},
    ...           "required": ["n"]}
    >>> sorted(fabricate_answer(asked, Ask(schema, forced=True)))
    ['n']
    >>> fabricate_answer(asked, Ask(schema), unforced="stray")
    {}
    """
    seed = request_seed(request) + choice
    if ask.schema is None:
        rng = random.Random(seed)
        return "\n".join(fabricate_sentence(rng, request.text) for _ in range(3))
    value = fabricate(ask.schema, seed=seed, context=request.text)
    answer = value if isinstance(value, dict) else {"result": value}
    if ask.forced or unforced == "comply":
        return answer
    if ask.tool is not None:
        return fabricate_answer(request, Ask(), choice=choice)
    required = ask.schema.get("required") or []
    return {k: v for k, v in answer.items() if not required or k != required[0]}


def payload_text(payload: str | dict[str, Any]) -> str:
    """An answer as the text a model writes: itself, or its JSON."""
    return payload if isinstance(payload, str) else json.dumps(payload)


def estimate_tokens(text: str) -> int:
    """About four characters a token: what the emulators report as usage."""
    return (len(text) + 3) // 4 if text else 0


def as_reply(item: Any) -> Reply:
    """A :class:`Reply` from a scripted item: a ``str`` is text, a ``dict`` a JSON result."""
    if isinstance(item, Reply):
        return item
    if isinstance(item, str):
        return Reply(content=item)
    if isinstance(item, dict):
        return Reply(json=item)
    message = f"a scripted reply must be a str, a dict or a Reply, not {type(item).__name__}"
    raise TypeError(message)


# ---------------------------------------------------------------------------------------
# HTTP


@dataclass(frozen=True)
class Out:
    """A response before it is sent: the emulator cuts a malformed one in half."""

    status: int
    body: str | dict[str, Any] | list[Any]
    headers: Mapping[str, str] | None = None
    content_type: str = "application/json"

    @property
    def text(self) -> str:
        """The body as sent."""
        return self.body if isinstance(self.body, str) else json.dumps(self.body)

    def cut(self) -> Out:
        """The same response with its body truncated halfway (a malformed reply)."""
        text = self.text
        return dataclasses.replace(self, body=text[: len(text) // 2])

    def response(self) -> Any:
        """The aiohttp response."""
        from aiohttp import web

        merged = {"Content-Type": self.content_type}
        for name, value in (self.headers or {}).items():
            if name.lower() == "content-type":
                merged.pop("Content-Type", None)
            merged[name] = str(value)
        return web.Response(status=self.status, body=self.text.encode(), headers=merged)


# ---------------------------------------------------------------------------------------
# The server


class Emulator:
    """A provider emulator on 127.0.0.1, running in a background thread.

    Subclasses say which paths they serve (:meth:`_add_routes`), how a reply and an error
    body are written (:meth:`_render`, :meth:`_error_body`), and which header and status
    carry a fault (``retry_header``, ``overloaded_status``, or :meth:`_fault_reply`); they
    may refuse a request before any reply is drawn (:meth:`_refuse`), as a server checks
    headers. ``api_base`` is the URL to give LiteLLM for that provider, and
    ``example_model`` a model string that reaches it.
    """

    provider: ClassVar[str] = "openai"
    title: ClassVar[str] = "OpenAI-compatible server"
    example_model: ClassVar[str] = "openai/test-model"
    key_variable: ClassVar[str | None] = "OPENAI_API_KEY"
    api_path: ClassVar[str] = ""
    retry_header: ClassVar[str] = "Retry-After"
    overloaded_status: ClassVar[int] = 503

    def __init__(
        self,
        latency: Latency = 0.0,
        faults: Faults | None = None,
        seed: int = 0,
        responder: Responder | None = None,
        *,
        port: int = 0,
    ) -> None:
        self.latency = latency
        self.faults = faults
        self.seed = seed
        self.responder = responder
        self.port = port
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

    # -- what a provider defines -------------------------------------------------------

    def _add_routes(self, app: Any) -> None:
        """Register the provider's paths with ``self._route(app, method, path, endpoint)``."""
        raise NotImplementedError

    def _render(self, recorded: RecordedRequest, reply: Reply, number: int) -> Out:
        """The provider's response for *reply* (an error body when its status is not 200)."""
        raise NotImplementedError

    def _error_body(self, status: int, message: str | None) -> dict[str, Any]:
        """An error body in the provider's own shape (its default message if *message* is None)."""
        raise NotImplementedError

    def _error(
        self, status: int, message: str | None = None, headers: Mapping[str, str] | None = None
    ) -> Out:
        """An error response in the provider's own shape."""
        return Out(status, self._error_body(status, message), headers)

    def _fault_reply(self, fault: str, faults: Faults) -> Reply:
        """The reply for a drawn fault: ``"429"``, ``"500"`` or ``"overloaded"``."""
        if fault == "429":
            return Reply(status=429, headers={self.retry_header: faults.retry_after_text})
        return Reply(status=500 if fault == "500" else self.overloaded_status)

    def _refuse(self, recorded: RecordedRequest, request: Any) -> Out | None:
        """An error for a request the provider rejects outright (a missing header...)."""
        return None

    def _not_found(self, method: str, path: str) -> Out:
        """The provider's answer to a path it does not serve."""
        return self._error(404)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self: _E) -> _E:
        """Bind 127.0.0.1 (``port``, or a free one) and serve in a daemon thread; returns self."""
        if self._thread is not None:
            message = f"the {self.title} emulator is already running"
            raise RuntimeError(message)
        from aiohttp import web

        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def startup() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            self._add_routes(app)
            app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
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
            site = web.TCPSite(runner, "127.0.0.1", self.port, backlog=1024)
            await site.start()
            self._port = runner.addresses[0][1]

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(startup())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.run_until_complete(self._cleanup())
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        thread = threading.Thread(target=run, name=f"promptflow-{self.provider}", daemon=True)
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
            _log.exception("%s emulator did not shut down cleanly", self.provider)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5.0)
        self._loop = self._thread = None
        self._runner = self._stopping = None
        self._port = None

    async def _shutdown(self) -> None:
        assert self._stopping is not None
        self._stopping.set()  # wakes every sleeping handler
        await self._cleanup()

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self: _E) -> _E:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "stopped"
        return f"<{type(self).__name__} {where}>"

    # -- public state ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._port is None:
            message = f"the {self.title} emulator is not running; call start() or use `with`"
            raise RuntimeError(message)
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        """The ``api_base`` to give LiteLLM for this provider."""
        return self.url + self.api_path

    def fault(self, kind: Literal["429", "500", "overloaded"]) -> Reply:
        """The reply a drawn fault of *kind* gives, in the provider's shape, to script one.

        >>> from promptflow_dsl.testing import AnthropicEmulator
        >>> AnthropicEmulator(faults=Faults(retry_after=3)).fault("429").headers
        {'retry-after': '3'}
        """
        return self._fault_reply(kind, self.faults or Faults())

    def script(self, replies: Iterable[str | dict[str, Any] | Reply]) -> None:
        """Queue replies, served first in, first out before the responder is asked.

        A ``str`` is ``Reply(content=s)``, a ``dict`` is ``Reply(json=d)``.
        """
        converted = [as_reply(item) for item in replies]
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

    def _route(self, app: Any, method: str, path: str, endpoint: str) -> None:
        async def handle(request: Any) -> Any:
            return await self._handle(request, endpoint)

        app.router.add_route(method, path, handle)

    async def _handle_unknown(self, request: Any) -> Any:
        return await self._handle(request, "unknown")

    def _arrive(self, endpoint: str, recorded: RecordedRequest | None) -> int:
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

    def _bill(self, usage: Mapping[str, int]) -> None:
        """Count the usage that a 200 reply reports (what the provider bills)."""
        with self._lock:
            c = self._counts
            self._counts = dataclasses.replace(
                c,
                billed_input_tokens=c.billed_input_tokens + usage["prompt_tokens"],
                billed_output_tokens=c.billed_output_tokens + usage["completion_tokens"],
            )

    def _leave(self, status: int | None) -> None:
        with self._lock:
            c = self._counts
            by_status = dict(c.by_status)
            if status is not None:
                by_status[status] = by_status.get(status, 0) + 1
            self._counts = dataclasses.replace(
                c, in_flight=max(0, c.in_flight - 1), by_status=by_status
            )

    def _record(self, request: Any, endpoint: str, raw: bytes) -> RecordedRequest | None:
        try:
            body = json.loads(raw) if raw or endpoint != "unknown" else {}
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            if endpoint != "unknown":
                return None
            body = {}
        headers = {
            k.lower(): v for k, v in request.headers.items() if k.lower() not in _SECRET_HEADERS
        }
        return RecordedRequest(endpoint, body, headers, self.provider, request.path)

    async def _handle(self, request: Any, endpoint: str) -> Any:
        recorded = self._record(request, endpoint, await request.read())
        number = self._arrive(endpoint, recorded)
        left = False
        try:
            if recorded is None:
                out = self._error(400, "The body is not a JSON object.")
            elif endpoint == "unknown":
                out = self._not_found(request.method, request.path)
            else:
                out = self._refuse(recorded, request) or await self._respond(recorded, number)
            response = out.response()
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

    async def _respond(self, recorded: RecordedRequest, number: int) -> Out:
        latency, scripted, fault = self._draw()
        reply = self._choose(recorded, scripted, fault)
        if fault == "hang":
            latency += (self.faults or Faults()).hang_seconds
        await self._sleep(latency + max(0.0, reply.delay))
        if self._stopping is not None and self._stopping.is_set():
            return self._error(503, f"The {self.title} emulator is stopping.")
        out = self._deliver(recorded, reply, number)
        rendered = reply.status == 200 and reply.raw_body is None
        return out.cut() if fault == "malformed" and rendered else out

    def _respond_at_once(self, recorded: RecordedRequest, number: int) -> Out:
        """What :meth:`_respond` answers, without the wait and the transport faults.

        The draws are the same (latency included, unused), so a batch gets the replies an
        online run would; a hang or a malformed body, faults of a connection, become
        normal replies.
        """
        _, scripted, fault = self._draw()
        return self._deliver(recorded, self._choose(recorded, scripted, fault), number)

    def _choose(
        self, recorded: RecordedRequest, scripted: Reply | None, fault: str | None
    ) -> Reply:
        """The reply: a drawn fault's, the scripted one, the responder's, or the default."""
        if fault in ("429", "500", "overloaded"):
            return self._fault_reply(fault, self.faults or Faults())
        if scripted is not None:
            return scripted
        try:
            return self._ask_responder(recorded) or Reply()
        except Exception as exc:
            _log.exception("%s emulator responder failed", self.provider)
            return Reply(status=500, content=f"emulator responder failed: {exc!r}")

    def _deliver(self, recorded: RecordedRequest, reply: Reply, number: int) -> Out:
        """*reply* as the provider's response: verbatim, an error body, or :meth:`_render`."""
        if reply.raw_body is not None:
            return Out(reply.status, reply.raw_body, reply.headers)
        if reply.status != 200:
            if reply.json is not None:
                return Out(reply.status, reply.json, reply.headers)
            return self._error(reply.status, reply.content, reply.headers)
        return self._render(recorded, reply, number)

    def _ask_responder(self, recorded: RecordedRequest) -> Reply | None:
        if self.responder is None:
            return None
        answer = self.responder(recorded)
        return None if answer is None else as_reply(answer)

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0 or self._stopping is None:
            return
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass


class NativeEmulator(Emulator):
    """An emulator of a provider's own API, whose model may stray from an unforced schema.

    The options are :class:`Emulator`'s, plus ``unforced``: what the model does with a
    schema it is not forced to follow (``"stray"``, the default, or ``"comply"``).
    """

    def __init__(
        self,
        latency: Latency = 0.0,
        faults: Faults | None = None,
        seed: int = 0,
        responder: Responder | None = None,
        *,
        unforced: Unforced = "stray",
        port: int = 0,
    ) -> None:
        super().__init__(latency, faults, seed, responder, port=port)
        self.unforced = unforced

    def _answer(self, recorded: RecordedRequest, reply: Reply, ask: Ask) -> str | dict[str, Any]:
        """*reply*'s scripted text or JSON, else an answer fabricated for *ask*."""
        if reply.content is not None:
            return reply.content
        if reply.json is not None:
            return dict(reply.json)
        return fabricate_answer(recorded, ask, unforced=self.unforced)
