"""An emulator of Cohere's v2 Chat API (``POST /v2/chat``), for tests over real HTTP.

It checks what the API checks (a bearer token, ``model`` and ``messages``, a
``tool_choice`` of ``"REQUIRED"`` or ``"NONE"``), and answers with Cohere's fields: a
``message`` whose ``content`` is a list of ``{"type": "text", "text": ...}`` blocks, or
whose ``tool_calls`` carry ``function.arguments`` as a JSON string (after a
``tool_plan``); a ``finish_reason`` (``COMPLETE``, ``TOOL_CALL``, ``MAX_TOKENS``); and
``usage`` with ``billed_units`` (what Cohere charges, added up in ``stats``) and
``tokens`` (the prompt as the model saw it, chat template included, so its input count
is higher, as in Cohere's own examples).

Structure is forced Cohere's way: ``tool_choice: "REQUIRED"`` makes the model call a
tool, and ``response_format`` ``{"type": "json_object", "json_schema": ...}`` makes it
write that JSON. Tools offered without ``REQUIRED`` are optional (``"NONE"`` forbids
them), and ``json_object`` without a schema only guarantees JSON: ``unforced="stray"``
(the default) then answers in prose, or with JSON that misses a required field.

Errors have Cohere's shape, ``{"id": ..., "message": ...}``, with the messages its docs
list (``invalid api token``; ``You are past the per minute request limit...``). Cohere
documents no retry field in the body, so a fault 429 carries the standard
``Retry-After`` header; an overload is a 503.

>>> import json, urllib.request
>>> from promptflow_dsl.testing import CohereEmulator
>>> with CohereEmulator() as server:
...     server.script(["Hello!"])
...     body = {"model": "command-r-08-2024",
...             "messages": [{"role": "user", "content": "Hi"}]}
...     request = urllib.request.Request(server.api_base, data=json.dumps(body).encode(),
...         headers={"authorization": "Bearer test-key", "content-type": "application/json"})
...     with urllib.request.urlopen(request) as response:
...         reply = json.load(response)
>>> reply["message"]["content"], reply["finish_reason"], sorted(reply["usage"])
([{'type': 'text', 'text': 'Hello!'}], 'COMPLETE', ['billed_units', 'tokens'])

With the library: ``Model("cohere/command-r-08-2024", api_base=server.api_base,
api_key="test-key")``; ``api_base`` ends in ``/v2/chat``, since LiteLLM posts to the
``api_base`` it is given as it stands.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

from promptflow_dsl.testing._base import (
    Ask,
    NativeEmulator,
    Out,
    RecordedRequest,
    Reply,
    estimate_tokens,
    find_schema,
    payload_text,
)

__all__ = ["CohereEmulator"]

_MESSAGES = {
    400: "invalid request: the request body is not valid.",
    401: "invalid api token",
    402: "Please add or update your payment method at https://dashboard.cohere.com/billing",
    404: "Not Found",
    429: "You are past the per minute request limit, please wait and try again later.",
    500: "internal server error, this has been reported to our developers",
    503: "service unavailable, please try again later",
}
_FINISH_REASONS = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALL"}
_TOOL_CHOICES = ("REQUIRED", "NONE")
_TEMPLATE_TOKENS = 20  # the chat template that ``usage.tokens`` counts and billing does not


def read_ask(body: Mapping[str, Any], text: str) -> Ask:
    """What a v2 Chat request asks for: a tool, a response format, or a schema in the prompt."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    functions = [t.get("function") or {} for t in tools]
    functions = [f for f in functions if isinstance(f, dict) and "name" in f]
    choice = body.get("tool_choice")
    if functions and choice != "NONE":
        function = functions[0]
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        return Ask(schema, tool=str(function["name"]), forced=choice == "REQUIRED")
    form = body.get("response_format")
    if isinstance(form, dict) and form.get("type") == "json_object":
        schema = form.get("json_schema")
        if isinstance(schema, dict):
            return Ask(schema, forced=True)
        return Ask(find_schema(text) or {"type": "object", "properties": {}})
    return Ask(find_schema(text))


class CohereEmulator(NativeEmulator):
    """Cohere's v2 Chat API on 127.0.0.1 (see the module docstring).

    The options are :class:`~promptflow_dsl.testing.LoopbackServer`'s, plus ``unforced``:
    what the model does with a schema it is not forced to follow (``"stray"`` or
    ``"comply"``). A scripted ``dict`` is a tool call when the request offers tools (and
    does not say ``"NONE"``), else the JSON text.
    """

    provider = "cohere"
    title = "Cohere v2 Chat API"
    example_model = "cohere/command-r-08-2024"
    key_variable = "COHERE_API_KEY"
    api_path = "/v2/chat"

    def _add_routes(self, app: Any) -> None:
        self._route(app, "POST", "/v2/chat", "chat")

    def _error_body(self, status: int, message: str | None) -> dict[str, Any]:
        text = message or _MESSAGES.get(status, f"HTTP {status}")
        return {"id": str(uuid.UUID(bytes=_digest(f"{status}{text}")[:16])), "message": text}

    def _refuse(self, recorded: RecordedRequest, request: Any) -> Out | None:
        token = request.headers.get("authorization", "")
        if not token.lower().startswith("bearer ") or not token[7:].strip():
            return self._error(401)
        body = recorded.body
        if not body.get("model"):
            return self._error(400, "invalid request: model must be specified.")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return self._error(400, "invalid request: messages must be a non-empty list.")
        choice = body.get("tool_choice")
        if choice is not None and choice not in _TOOL_CHOICES:
            message = f"invalid request: tool_choice must be one of {', '.join(_TOOL_CHOICES)}."
            return self._error(400, message)
        if body.get("stream"):
            return self._error(400, "invalid request: this emulator answers without streaming.")
        return None

    def _render(self, recorded: RecordedRequest, reply: Reply, number: int) -> Out:
        ask = read_ask(recorded.body, recorded.text)
        payload = self._answer(recorded, reply, ask)
        text = payload_text(payload)
        message: dict[str, Any] = {"role": "assistant"}
        finish = reply.finish_reason
        if isinstance(payload, dict) and ask.tool is not None:
            digest = _digest(f"{number}{text}").hex()[:12]
            function = {"name": ask.tool, "arguments": text}
            message["tool_plan"] = f"I will call {ask.tool} with the details asked for."
            message["tool_calls"] = [
                {"id": f"{ask.tool}_{digest}", "type": "function", "function": function}
            ]
            finish = "tool_calls" if finish == "stop" else finish
        else:
            message["content"] = [{"type": "text", "text": text}]
        billed = {
            "input_tokens": estimate_tokens(recorded.text),
            "output_tokens": estimate_tokens(text),
        }
        self._bill(
            {"prompt_tokens": billed["input_tokens"], "completion_tokens": billed["output_tokens"]}
        )
        tokens = {**billed, "input_tokens": billed["input_tokens"] + _TEMPLATE_TOKENS}
        body = {
            "id": str(uuid.UUID(bytes=_digest(f"reply{number}")[:16])),
            "message": message,
            "finish_reason": _FINISH_REASONS.get(finish, finish),
            "usage": {"billed_units": billed, "tokens": tokens},
        }
        return Out(200, body, reply.headers)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()
