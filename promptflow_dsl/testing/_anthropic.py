"""An emulator of Anthropic's Messages API (``POST /v1/messages``), for tests over real HTTP.

It checks what the API checks (an ``x-api-key`` or bearer token, the ``anthropic-version``
header, ``max_tokens``), answers with content blocks (``text``, or ``tool_use`` with an
``input`` object), a ``stop_reason`` (``end_turn``, ``tool_use``, ``max_tokens``) and
``usage.input_tokens`` / ``usage.output_tokens``. Structure is forced the API's way:
``tool_choice`` ``{"type": "tool", "name": ...}`` or ``{"type": "any"}`` makes the model
call a tool, and ``output_format`` (or ``output_config.format``) of type ``json_schema``
makes it write that JSON. With ``tool_choice`` ``auto`` (or none), or a schema only in the
prompt, nothing is forced: ``unforced="stray"`` (the default) answers in prose or with JSON
that misses a required field, ``"comply"`` follows the schema anyway.

Errors have Anthropic's shape, ``{"type": "error", "error": {"type": "rate_limit_error",
"message": ...}, "request_id": ...}``: a fault 429 carries ``retry-after``, an overload is
a 529 ``overloaded_error``, and an unknown path (such as ``/v1/v1/messages``, from an
``api_base`` ending in ``/v1``) a 404 ``not_found_error``.

>>> import json, urllib.request
>>> from promptflow_dsl.testing import AnthropicEmulator
>>> with AnthropicEmulator() as server:
...     server.script(["Hello!"])
...     body = {"model": "claude-3-5-haiku-20241022", "max_tokens": 100,
...             "messages": [{"role": "user", "content": "Hi"}]}
...     request = urllib.request.Request(server.url + "/v1/messages",
...         data=json.dumps(body).encode(), headers={"x-api-key": "sk-ant-test",
...         "anthropic-version": "2023-06-01", "content-type": "application/json"})
...     with urllib.request.urlopen(request) as response:
...         reply = json.load(response)
>>> reply["content"], reply["stop_reason"], sorted(reply["usage"])
([{'type': 'text', 'text': 'Hello!'}], 'end_turn', ['input_tokens', 'output_tokens'])

With the library: ``Model("anthropic/claude-3-5-haiku-20241022", api_base=server.api_base,
api_key="sk-ant-test")``; ``api_base`` is the server's root, since LiteLLM appends
``/v1/messages`` itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from promptflow_dsl.testing._anthropic_batches import AnthropicBatches
from promptflow_dsl.testing._base import (
    Ask,
    Faults,
    Latency,
    NativeEmulator,
    Out,
    RecordedRequest,
    Reply,
    Responder,
    Unforced,
    estimate_tokens,
    find_schema,
    payload_text,
)
from promptflow_dsl.testing._batches import BatchPlan

__all__ = ["AnthropicEmulator"]

_ERROR_TYPES = {
    400: ("invalid_request_error", "Bad request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not Found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error."),
    503: ("api_error", "Service unavailable."),
    529: ("overloaded_error", "Overloaded"),
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def read_ask(body: Mapping[str, Any], text: str) -> Ask:
    """What a Messages request asks for: a tool, an output format, or a schema in the prompt."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t]
    given = body.get("tool_choice")
    choice: Mapping[str, Any] = given if isinstance(given, dict) else {}
    kind = choice.get("type", "auto") if tools else "none"
    if kind in ("tool", "any", "auto"):
        named = [t for t in tools if t["name"] == choice.get("name")] if kind == "tool" else []
        tool = (named or tools)[0]
        schema = tool.get("input_schema") or {"type": "object", "properties": {}}
        return Ask(schema, tool=tool["name"], forced=kind != "auto")
    output = body.get("output_format") or (body.get("output_config") or {}).get("format")
    if isinstance(output, dict) and output.get("type") == "json_schema":
        return Ask(output.get("schema") or {"type": "object", "properties": {}}, forced=True)
    return Ask(find_schema(text))


class AnthropicEmulator(AnthropicBatches, NativeEmulator):
    """An Anthropic Messages API on 127.0.0.1 (see the module docstring).

    The options are :class:`~promptflow_dsl.testing.LoopbackServer`'s, plus ``unforced``:
    what the model does with a schema it is not forced to follow (``"stray"`` or
    ``"comply"``). A scripted ``dict`` is a ``tool_use`` block when the request offers
    tools, else the JSON text. The Message Batches API (``/v1/messages/batches``) runs
    batches as ``batches`` plans them (:class:`~promptflow_dsl.testing.BatchPlan`; assign
    ``batch_plan`` to change it).
    """

    provider = "anthropic"
    title = "Anthropic Messages API"
    example_model = "anthropic/claude-3-5-haiku-20241022"
    key_variable = "ANTHROPIC_API_KEY"
    retry_header = "retry-after"
    overloaded_status = 529

    def __init__(
        self,
        latency: Latency = 0.0,
        faults: Faults | None = None,
        seed: int = 0,
        responder: Responder | None = None,
        *,
        unforced: Unforced = "stray",
        batches: BatchPlan | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(latency, faults, seed, responder, unforced=unforced, port=port)
        self._init_batches(batches)

    def _add_routes(self, app: Any) -> None:
        self._route(app, "POST", "/v1/messages", "messages")
        self._add_batch_routes(app)

    def _error_body(self, status: int, message: str | None) -> dict[str, Any]:
        kind, default = _ERROR_TYPES.get(status, ("api_error", f"HTTP {status}."))
        request_id = "req_" + hashlib.sha256(f"{status}{message}".encode()).hexdigest()[:24]
        body = {"type": "error", "error": {"type": kind, "message": message or default}}
        return {**body, "request_id": request_id}

    def _refuse(self, recorded: RecordedRequest, request: Any) -> Out | None:
        return self._refuse_headers(request.headers) or self._refuse_line(recorded)

    def _refuse_headers(self, headers: Mapping[str, str]) -> Out | None:
        if not headers.get("x-api-key") and not headers.get("authorization"):
            return self._error(401, "x-api-key header is required")
        if not headers.get("anthropic-version"):
            return self._error(400, "anthropic-version: header is required")
        return None

    def _refuse_line(self, recorded: RecordedRequest) -> Out | None:
        for name in ("model", "max_tokens", "messages"):
            if name not in recorded.body:
                return self._error(400, f"{name}: Field required")
        if recorded.body.get("stream"):
            return self._error(400, "stream: this emulator answers without streaming")
        return None

    def _render(self, recorded: RecordedRequest, reply: Reply, number: int) -> Out:
        ask = read_ask(recorded.body, recorded.text)
        payload = self._answer(recorded, reply, ask)
        text = payload_text(payload)
        block: dict[str, Any]
        if isinstance(payload, dict) and ask.tool is not None:
            digest = hashlib.sha256(f"{number}{payload}".encode()).hexdigest()[:24]
            block = {"type": "tool_use", "id": f"toolu_{digest}", "name": ask.tool}
            block["input"] = payload
            stop = "tool_use" if reply.finish_reason == "stop" else reply.finish_reason
        else:
            block = {"type": "text", "text": text}
            stop = reply.finish_reason
        tokens_in, tokens_out = estimate_tokens(recorded.text), estimate_tokens(text)
        body = {
            "id": f"msg_emulated{number:08d}",
            "type": "message",
            "role": "assistant",
            "model": recorded.body.get("model"),
            "content": [block],
            "stop_reason": _STOP_REASONS.get(stop, stop),
            "stop_sequence": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
        }
        self._bill({"prompt_tokens": tokens_in, "completion_tokens": tokens_out})
        return Out(200, body, reply.headers)
