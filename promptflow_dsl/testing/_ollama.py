"""An emulator of Ollama's native API (``/api/chat``, ``/api/generate``), for tests over HTTP.

Replies have Ollama's fields: ``message`` (chat) or ``response`` (generate), ``done``,
``done_reason`` (``stop``, ``length``), ``prompt_eval_count`` and ``eval_count`` (the
token counts) and the durations in nanoseconds. Without ``"stream": false`` a reply is
streamed, as Ollama does, as JSON lines ending with ``"done": true``.

Structure is forced Ollama's way: a JSON schema object in ``format`` is enforced (the reply
is valid JSON for it), while ``format: "json"`` only guarantees JSON. With
``unforced="stray"`` (the default) a JSON-mode reply is valid JSON that misses the first
required field of the schema stated in the prompt; ``"comply"`` follows the prompt.
Offered ``tools`` cannot be forced on Ollama (it has no tool choice): a model that strays
answers in prose, one that complies calls the first tool. ``raw`` on generate is recorded
as sent (``raw: true`` means the prompt reached the model without a chat template).
Errors are ``{"error": "..."}``; a fault 429 carries ``Retry-After``, an overload is a
503 ``server busy``. ``/api/show``, ``/api/tags`` and ``/api/version`` answer too, since
clients ask them about the model.

>>> import json, urllib.request
>>> from promptflow_dsl.testing import OllamaEmulator
>>> with OllamaEmulator() as server:
...     body = {"model": "llama3.1", "prompt": "Why is the sky blue?", "stream": False,
...             "raw": True, "format": {"type": "object", "required": ["why"],
...                                     "properties": {"why": {"type": "string"}}}}
...     request = urllib.request.Request(server.url + "/api/generate",
...         data=json.dumps(body).encode(), headers={"content-type": "application/json"})
...     with urllib.request.urlopen(request) as response:
...         reply = json.load(response)
...     raw = server.requests[0].body["raw"]
>>> list(json.loads(reply["response"])), reply["done"], raw
(['why'], True, True)

With the library: ``Model("ollama/llama3.1", api_base=server.api_base)`` reaches
``/api/generate``, ``Model("ollama_chat/llama3.1", api_base=server.api_base)``
``/api/chat``; ``api_base`` is the server's root.
"""

from __future__ import annotations

import json
import re
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

__all__ = ["OllamaEmulator"]

_MESSAGES = {
    400: "invalid request",
    401: "unauthorized",
    404: "model not found, try pulling it first",
    429: "too many requests, please try again later",
    500: "an error was encountered while running the model",
    503: "server busy, please try again.  maximum pending requests exceeded",
}
_CREATED_AT = "2024-07-23T17:00:00.000000Z"


def read_ask(body: Mapping[str, Any], text: str) -> Ask:
    """What an Ollama request asks for: a ``format`` schema, JSON, or a tool."""
    form = body.get("format")
    if isinstance(form, dict):
        return Ask(form, forced=True)
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    if tools:
        function = tools[0].get("function") or {}
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        return Ask(schema, tool=str(function.get("name", "function")))
    if form == "json":
        return Ask(find_schema(text) or {"type": "object", "properties": {}})
    return Ask(find_schema(text))


class OllamaEmulator(NativeEmulator):
    """An Ollama server on 127.0.0.1 (see the module docstring).

    The options are :class:`~promptflow_dsl.testing.LoopbackServer`'s, plus ``unforced``:
    what the model does with a schema it is not forced to follow (``"stray"`` or
    ``"comply"``). A scripted ``dict`` is a tool call when the chat request offers tools,
    else the JSON text.
    """

    provider = "ollama"
    title = "Ollama"
    example_model = "ollama/llama3.1"
    key_variable = None

    def _add_routes(self, app: Any) -> None:
        self._route(app, "POST", "/api/chat", "chat")
        self._route(app, "POST", "/api/generate", "generate")
        app.router.add_post("/api/show", self._handle_show)
        app.router.add_get("/api/tags", self._handle_tags)
        app.router.add_get("/api/version", self._handle_version)
        app.router.add_get("/", self._handle_root)

    async def _handle_show(self, request: Any) -> Any:
        info = {
            "template": "{{ if .Tools }}tools{{ end }}{{ .Prompt }}",
            "details": {"family": "llama", "parameter_size": "8.0B"},
            "model_info": {"llama.context_length": 131072},
            "capabilities": ["completion", "tools"],
        }
        return Out(200, info).response()

    async def _handle_tags(self, request: Any) -> Any:
        model = {"name": "llama3.1:latest", "model": "llama3.1:latest", "size": 0}
        return Out(200, {"models": [model]}).response()

    async def _handle_version(self, request: Any) -> Any:
        return Out(200, {"version": "0.6.0"}).response()

    async def _handle_root(self, request: Any) -> Any:
        return Out(200, "Ollama is running", content_type="text/plain").response()

    def _error_body(self, status: int, message: str | None) -> dict[str, Any]:
        return {"error": message or _MESSAGES.get(status, f"HTTP {status}")}

    def _not_found(self, method: str, path: str) -> Out:
        return Out(404, "404 page not found", content_type="text/plain")

    def _refuse(self, recorded: RecordedRequest, request: Any) -> Out | None:
        if not recorded.body.get("model"):
            return self._error(400, "model is required")
        if recorded.endpoint == "chat" and not isinstance(recorded.body.get("messages"), list):
            return self._error(400, "messages is required")
        return None

    def _render(self, recorded: RecordedRequest, reply: Reply, number: int) -> Out:
        ask = read_ask(recorded.body, recorded.text)
        payload = self._answer(recorded, reply, ask)
        chat = recorded.endpoint == "chat"
        as_call = chat and isinstance(payload, dict) and ask.tool is not None
        text = "" if as_call else payload_text(payload)
        stats = {
            "total_duration": 1_000_000,
            "load_duration": 100_000,
            "prompt_eval_count": estimate_tokens(recorded.text),
            "prompt_eval_duration": 200_000,
            "eval_count": estimate_tokens(text or json.dumps(payload)),
            "eval_duration": 700_000,
        }
        done = {
            "model": recorded.body.get("model"),
            "created_at": _CREATED_AT,
            "done": True,
            "done_reason": "length" if reply.finish_reason == "length" else "stop",
        }
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if as_call:
                call = {"function": {"name": ask.tool, "arguments": payload}}
                message["tool_calls"] = [call]
            final = {**done, "message": message, **stats}
        else:
            final = {**done, "response": text, "context": [1, 2, 3], **stats}
        if recorded.body.get("stream", True) is False:
            return Out(200, final, reply.headers)
        return Out(200, _stream_lines(final, chat), reply.headers, "application/x-ndjson")


def _stream_lines(final: dict[str, Any], chat: bool) -> str:  # noqa: FBT001
    """*final* as Ollama streams it: one JSON line per piece of text, then the last line."""
    text = final["message"]["content"] if chat else final["response"]
    head = {"model": final["model"], "created_at": final["created_at"], "done": False}
    lines = []
    for piece in re.findall(r"\S+\s*|\s+", text):
        part = {"message": {"role": "assistant", "content": piece}} if chat else {"response": piece}
        lines.append(json.dumps({**head, **part}))
    last = dict(final)
    if chat:
        last["message"] = {**final["message"], "content": ""}
    else:
        last["response"] = ""
    lines.append(json.dumps(last))
    return "\n".join(lines) + "\n"
