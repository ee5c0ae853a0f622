"""An emulator of the Gemini API's ``generateContent``, for tests over real HTTP.

``POST /v1beta/models/{model}:generateContent`` (``v1`` and ``v1alpha`` too, and
``:streamGenerateContent?alt=sse``) takes the key as ``x-goog-api-key`` or a ``key=`` query
parameter (neither is recorded), reads ``contents`` / ``parts``, ``systemInstruction``,
``generationConfig`` and ``tools`` / ``functionDeclarations`` (field names in camelCase or,
as the API also accepts and LiteLLM sends them, snake_case), and answers with
``candidates`` (``content.parts`` holding ``text`` or a ``functionCall``), a
``finishReason`` (``STOP``, ``MAX_TOKENS``) and ``usageMetadata`` (``promptTokenCount``,
``candidatesTokenCount``, ``totalTokenCount``).

Structure is forced Gemini's way: ``toolConfig.functionCallingConfig.mode`` ``ANY`` makes
the model call a function (the first of ``allowedFunctionNames``), and ``responseMimeType``
``application/json`` with a ``responseSchema`` (OpenAPI types, ``"STRING"``...) or a
``responseJsonSchema`` makes it write that JSON. ``responseMimeType`` alone only
guarantees JSON, and mode ``AUTO`` only offers the functions: ``unforced="stray"`` (the
default) then writes JSON missing a required field, or prose.

Errors have Google's shape, ``{"error": {"code": 429, "message": ..., "status":
"RESOURCE_EXHAUSTED", "details": [...]}}``; a fault 429 carries its delay only in the body,
as ``{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}``, and an
overload is a 503 ``UNAVAILABLE``.

>>> import json, urllib.request
>>> from promptflow_dsl.testing import GeminiEmulator
>>> with GeminiEmulator() as server:
...     server.script(["Hello!"])
...     body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
...     request = urllib.request.Request(
...         server.api_base + "/models/gemini-1.5-flash:generateContent",
...         data=json.dumps(body).encode(), headers={"x-goog-api-key": "test-key",
...         "content-type": "application/json"})
...     with urllib.request.urlopen(request) as response:
...         reply = json.load(response)
>>> reply["candidates"][0]["content"]["parts"], reply["candidates"][0]["finishReason"]
([{'text': 'Hello!'}], 'STOP')

With the library: ``Model("gemini/gemini-1.5-flash", api_base=server.api_base,
api_key="test-key")``; ``api_base`` ends in ``/v1beta``, since LiteLLM appends
``/models/{model}:generateContent`` to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from promptflow_dsl.testing._base import (
    Ask,
    Faults,
    NativeEmulator,
    Out,
    RecordedRequest,
    Reply,
    estimate_tokens,
    find_schema,
    payload_text,
)

__all__ = ["GeminiEmulator"]

_STATUSES = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: (
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without "
        "established identity). Please use API Key or other form of API consumer identity "
        "to call this API.",
    ),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


def json_schema_of(node: Any) -> Any:
    """An OpenAPI-style ``responseSchema`` as JSON Schema: types in lower case.

    >>> json_schema_of({"type": "OBJECT", "properties": {"a": {"type": "STRING"}}})
    {'type': 'object', 'properties': {'a': {'type': 'string'}}}
    """
    if isinstance(node, list):
        return [json_schema_of(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema_of(v) for k, v in node.items()}
    if isinstance(out.get("type"), str):
        out["type"] = out["type"].lower()
    return out


def _field(node: Any, name: str) -> Any:
    """*node*'s field *name*, given in camelCase or, as the API also accepts, snake_case."""
    if not isinstance(node, Mapping):
        return None
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return node[name] if name in node else node.get(snake)


def _functions(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools") or []
    return [
        f
        for tool in tools
        for f in _field(tool, "functionDeclarations") or []
        if isinstance(f, dict) and "name" in f
    ]


def read_ask(body: Mapping[str, Any], text: str) -> Ask:
    """What a generateContent request asks for: a function call, a response schema, JSON."""
    functions = _functions(body)
    calling = _field(_field(body, "toolConfig"), "functionCallingConfig") or {}
    mode = str(calling.get("mode", "AUTO")).upper()
    if functions and mode != "NONE":
        allowed = _field(calling, "allowedFunctionNames") or []
        named = [f for f in functions if f["name"] in allowed]
        function = (named or functions)[0]
        schema = _field(function, "parametersJsonSchema") or function.get("parameters")
        schema = json_schema_of(schema or {"type": "object", "properties": {}})
        return Ask(schema, tool=function["name"], forced=mode == "ANY")
    config = _field(body, "generationConfig") or {}
    if _field(config, "responseMimeType") == "application/json":
        schema = _field(config, "responseJsonSchema") or _field(config, "responseSchema")
        if isinstance(schema, dict):
            return Ask(json_schema_of(schema), forced=True)
        return Ask(find_schema(text) or {"type": "object", "properties": {}})
    return Ask(find_schema(text))


class GeminiEmulator(NativeEmulator):
    """The Gemini API's ``generateContent`` on 127.0.0.1 (see the module docstring).

    The options are :class:`~promptflow_dsl.testing.LoopbackServer`'s, plus ``unforced``:
    what the model does with a schema it is not forced to follow (``"stray"`` or
    ``"comply"``). A scripted ``dict`` is a ``functionCall`` when the request declares
    functions, else the JSON text.
    """

    provider = "gemini"
    title = "Gemini API"
    example_model = "gemini/gemini-1.5-flash"
    key_variable = "GEMINI_API_KEY"
    api_path = "/v1beta"

    def _add_routes(self, app: Any) -> None:
        for version in ("v1", "v1beta", "v1alpha"):
            for method in ("generateContent", "streamGenerateContent"):
                path = f"/{version}/models/{{model:[^/:]+}}:{method}"
                self._route(app, "POST", path, "generateContent")

    def _error_body(self, status: int, message: str | None) -> dict[str, Any]:
        kind, default = _STATUSES.get(status, ("UNKNOWN", f"HTTP {status}."))
        return {"error": {"code": status, "message": message or default, "status": kind}}

    def _fault_reply(self, fault: str, faults: Faults) -> Reply:
        # Google sends the retry delay only in the body, as a RetryInfo detail.
        if fault == "429":
            kind, message = _STATUSES[429]
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            "generate_content_free_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{faults.retry_after_text}s",
                },
            ]
            error = {"code": 429, "message": message, "status": kind, "details": details}
            return Reply(status=429, json={"error": error})
        return super()._fault_reply(fault, faults)

    def _refuse(self, recorded: RecordedRequest, request: Any) -> Out | None:
        if not request.headers.get("x-goog-api-key") and not request.query.get("key"):
            return self._error(403)
        if not isinstance(recorded.body.get("contents"), list):
            return self._error(400, "* GenerateContentRequest.contents: contents is not specified")
        return None

    def _render(self, recorded: RecordedRequest, reply: Reply, number: int) -> Out:
        ask = read_ask(recorded.body, recorded.text)
        payload = self._answer(recorded, reply, ask)
        text = payload_text(payload)
        part: dict[str, Any]
        if isinstance(payload, dict) and ask.tool is not None:
            part = {"functionCall": {"name": ask.tool, "args": payload}}
        else:
            part = {"text": text}
        prompt_tokens, output_tokens = estimate_tokens(recorded.text), estimate_tokens(text)
        model = recorded.path.rsplit("/", 1)[-1].split(":", 1)[0]
        body = {
            "candidates": [
                {
                    "content": {"parts": [part], "role": "model"},
                    "finishReason": _FINISH_REASONS.get(reply.finish_reason, "STOP"),
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": prompt_tokens + output_tokens,
            },
            "modelVersion": model,
            "responseId": f"emulated{number:08d}",
        }
        if recorded.path.endswith(":streamGenerateContent"):
            return Out(200, f"data: {json.dumps(body)}\r\n\r\n", reply.headers, "text/event-stream")
        return Out(200, body, reply.headers)
