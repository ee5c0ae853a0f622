"""The provider emulators on the wire: raw HTTP in each provider's shape, and `promptflow serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from promptflow_dsl.testing import (
    PROVIDERS,
    AnthropicEmulator,
    CohereEmulator,
    Emulator,
    Faults,
    GeminiEmulator,
    LoopbackServer,
    OllamaEmulator,
    Quirks,
    Reply,
    make_emulator,
)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
}
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-secret", "anthropic-version": "2023-06-01"}
GEMINI_HEADERS = {"x-goog-api-key": "g-secret"}
COHERE_HEADERS = {"authorization": "Bearer co-secret"}


def post(
    url: str, body: dict[str, Any] | None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    data = json.dumps(body).encode() if body is not None else b"not json"
    request = urllib.request.Request(
        url, data=data, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def anthropic_body(**extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": "Plan a trip to Lisbon."}]
    return {"model": "claude-3-5-haiku-20241022", "max_tokens": 100, "messages": messages, **extra}


def gemini_body(**extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": "Plan a trip to Lisbon."}]}], **extra}


def cohere_body(**extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": "Plan a trip to Lisbon."}]
    return {"model": "command-r-08-2024", "messages": messages, **extra}


# ---------------------------------------------------------------------------------------
# Anthropic


def test_anthropic_forced_tool_gives_a_schema_valid_tool_use_block() -> None:
    tool = {"name": "Trip", "input_schema": SCHEMA}
    with AnthropicEmulator() as server:
        body = anthropic_body(tools=[tool], tool_choice={"type": "tool", "name": "Trip"})
        status, _, text = post(server.url + "/v1/messages", body, ANTHROPIC_HEADERS)
    reply = json.loads(text)
    assert status == 200 and reply["type"] == "message" and reply["stop_reason"] == "tool_use"
    (block,) = reply["content"]
    assert block["type"] == "tool_use" and block["name"] == "Trip"
    assert set(block["input"]) == {"city", "days"} and isinstance(block["input"]["days"], int)
    assert reply["usage"]["input_tokens"] > 0 and reply["usage"]["output_tokens"] > 0


@pytest.mark.parametrize(
    ("unforced", "kind"), [("stray", "text"), ("comply", "tool_use")], ids=["stray", "comply"]
)
def test_anthropic_auto_tool_choice_is_not_forced(unforced: str, kind: str) -> None:
    tool = {"name": "Trip", "input_schema": SCHEMA}
    with AnthropicEmulator(unforced=unforced) as server:  # type: ignore[arg-type]
        body = anthropic_body(tools=[tool], tool_choice={"type": "auto"})
        _, _, text = post(server.url + "/v1/messages", body, ANTHROPIC_HEADERS)
    assert json.loads(text)["content"][0]["type"] == kind


def test_anthropic_output_format_is_forced_json() -> None:
    with AnthropicEmulator() as server:
        body = anthropic_body(output_format={"type": "json_schema", "schema": SCHEMA})
        _, _, text = post(server.url + "/v1/messages", body, ANTHROPIC_HEADERS)
    (block,) = json.loads(text)["content"]
    assert set(json.loads(block["text"])) == {"city", "days"}


def test_anthropic_checks_key_version_and_max_tokens() -> None:
    with AnthropicEmulator() as server:
        url = server.url + "/v1/messages"
        no_key = post(url, anthropic_body(), {"anthropic-version": "2023-06-01"})
        no_version = post(url, anthropic_body(), {"x-api-key": "k"})
        body = anthropic_body()
        del body["max_tokens"]
        no_max = post(url, body, ANTHROPIC_HEADERS)
    assert no_key[0] == 401 and json.loads(no_key[2])["error"]["type"] == "authentication_error"
    assert (
        no_version[0] == 400
        and "anthropic-version" in json.loads(no_version[2])["error"]["message"]
    )
    assert no_max[0] == 400 and "max_tokens" in json.loads(no_max[2])["error"]["message"]


@pytest.mark.parametrize(
    ("fault", "status", "kind"),
    [
        ("429", 429, "rate_limit_error"),
        ("500", 500, "api_error"),
        ("overloaded", 529, "overloaded_error"),
    ],
)
def test_anthropic_faults_have_anthropic_s_error_shape(fault: str, status: int, kind: str) -> None:
    with AnthropicEmulator(faults=Faults(retry_after=7)) as server:
        server.script([server.fault(fault)])  # type: ignore[arg-type]
        got, headers, text = post(server.url + "/v1/messages", anthropic_body(), ANTHROPIC_HEADERS)
    body = json.loads(text)
    assert got == status and body["type"] == "error" and body["error"]["type"] == kind
    assert body["request_id"].startswith("req_")
    assert (headers.get("retry-after") == "7") == (fault == "429")


def test_anthropic_unknown_path_is_a_not_found_error_and_is_recorded() -> None:
    with AnthropicEmulator() as server:
        status, _, text = post(server.url + "/v1/v1/messages", anthropic_body(), ANTHROPIC_HEADERS)
        (request,) = server.requests
        assert server.stats.by_endpoint == {"unknown": 1}
    assert status == 404 and json.loads(text)["error"]["type"] == "not_found_error"
    assert request.path == "/v1/v1/messages"


# ---------------------------------------------------------------------------------------
# Ollama


def test_ollama_format_schema_is_enforced_and_json_mode_is_not() -> None:
    prompt = f"Answer as JSON matching {json.dumps(SCHEMA)}."
    with OllamaEmulator() as server:
        url = server.url + "/api/generate"
        base = {"model": "llama3.1", "prompt": prompt, "stream": False}
        forced = json.loads(post(url, {**base, "format": SCHEMA})[2])
        json_only = json.loads(post(url, {**base, "format": "json"})[2])
    assert set(json.loads(forced["response"])) == {"city", "days"}
    assert json.loads(json_only["response"]) == {"days": json.loads(json_only["response"])["days"]}
    for reply in (forced, json_only):
        assert reply["done"] is True and reply["done_reason"] == "stop"
        assert reply["prompt_eval_count"] > 0 and reply["eval_count"] > 0


def test_ollama_chat_tool_call_has_object_arguments() -> None:
    tool = {"type": "function", "function": {"name": "Trip", "parameters": SCHEMA}}
    with OllamaEmulator(unforced="comply") as server:
        body = {
            "model": "llama3.1",
            "messages": [{"role": "user", "content": "Plan a trip."}],
            "tools": [tool],
            "stream": False,
        }
        reply = json.loads(post(server.url + "/api/chat", body)[2])
    (call,) = reply["message"]["tool_calls"]
    assert call["function"]["name"] == "Trip" and set(call["function"]["arguments"]) == {
        "city",
        "days",
    }


def test_ollama_streams_json_lines_unless_told_not_to() -> None:
    with OllamaEmulator() as server:
        server.script(["one two three"])
        body = {"model": "llama3.1", "messages": [{"role": "user", "content": "Count."}]}
        status, headers, text = post(server.url + "/api/chat", body)
    lines = [json.loads(line) for line in text.splitlines()]
    assert status == 200 and headers["Content-Type"].startswith("application/x-ndjson")
    assert "".join(line["message"]["content"] for line in lines) == "one two three"
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert lines[-1]["eval_count"] > 0


def test_ollama_records_raw_and_options_and_answers_errors_its_way() -> None:
    with OllamaEmulator(faults=Faults(retry_after=2)) as server:
        url = server.url + "/api/generate"
        body = {"model": "llama3.1", "prompt": "Hi", "raw": True, "options": {"temperature": 0.1}}
        post(url, {**body, "stream": False})
        server.script([server.fault("429"), server.fault("overloaded")])
        limited = post(url, {**body, "stream": False})
        busy = post(url, {**body, "stream": False})
        recorded = server.requests[0].body
    assert recorded["raw"] is True and recorded["options"] == {"temperature": 0.1}
    assert limited[0] == 429 and limited[1]["Retry-After"] == "2"
    assert isinstance(json.loads(limited[2])["error"], str)
    assert busy[0] == 503 and "busy" in json.loads(busy[2])["error"]


# ---------------------------------------------------------------------------------------
# Gemini


def test_gemini_mode_any_calls_the_allowed_function() -> None:
    functions = [
        {"name": "Other", "parameters": {"type": "OBJECT"}},
        {"name": "Trip", "parameters": SCHEMA},
    ]
    config = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["Trip"]}}
    with GeminiEmulator() as server:
        body = gemini_body(tools=[{"functionDeclarations": functions}], toolConfig=config)
        status, _, text = post(
            server.api_base + "/models/gemini-1.5-flash:generateContent", body, GEMINI_HEADERS
        )
    reply = json.loads(text)
    (part,) = reply["candidates"][0]["content"]["parts"]
    assert status == 200 and part["functionCall"]["name"] == "Trip"
    assert set(part["functionCall"]["args"]) == {"city", "days"}
    usage = reply["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] > 0


@pytest.mark.parametrize("key", ["responseSchema", "response_json_schema"])
def test_gemini_response_schema_is_forced_in_either_spelling(key: str) -> None:
    openapi = {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}
    config = {"responseMimeType": "application/json", key: openapi}
    with GeminiEmulator() as server:
        url = server.api_base + "/models/gemini-2.0-flash:generateContent?key=g-secret"
        _, _, text = post(url, gemini_body(generationConfig=config))
        (request,) = server.requests
    (part,) = json.loads(text)["candidates"][0]["content"]["parts"]
    assert json.loads(part["text"]).keys() == {"city"}
    assert "key" not in request.path and "g-secret" not in json.dumps(request.headers)


def test_gemini_429_carries_retry_info_in_the_body() -> None:
    with GeminiEmulator(faults=Faults(rate_429=1.0, retry_after=3)) as server:
        url = server.api_base + "/models/gemini-1.5-flash:generateContent"
        status, headers, text = post(url, gemini_body(), GEMINI_HEADERS)
        missing_key = post(url, gemini_body())
    error = json.loads(text)["error"]
    assert status == 429 and error["status"] == "RESOURCE_EXHAUSTED" and error["code"] == 429
    retry = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}]
    assert "Retry-After" not in headers
    assert (
        missing_key[0] == 403
        and json.loads(missing_key[2])["error"]["status"] == "PERMISSION_DENIED"
    )


def test_gemini_finish_reason_and_stream() -> None:
    with GeminiEmulator() as server:
        server.script([Reply(content="Cut", finish_reason="length"), "Whole"])
        cut = json.loads(
            post(server.api_base + "/models/m:generateContent", gemini_body(), GEMINI_HEADERS)[2]
        )
        status, _, text = post(
            server.api_base + "/models/m:streamGenerateContent?alt=sse",
            gemini_body(),
            GEMINI_HEADERS,
        )
    assert cut["candidates"][0]["finishReason"] == "MAX_TOKENS"
    event = json.loads(text.removeprefix("data: "))
    assert status == 200 and event["candidates"][0]["content"]["parts"] == [{"text": "Whole"}]


# ---------------------------------------------------------------------------------------
# Cohere


COHERE_TOOL = {"type": "function", "function": {"name": "Trip", "parameters": SCHEMA}}


def test_cohere_required_tool_choice_gives_a_tool_call_with_json_arguments() -> None:
    with CohereEmulator() as server:
        body = cohere_body(tools=[COHERE_TOOL], tool_choice="REQUIRED")
        status, _, text = post(server.api_base, body, COHERE_HEADERS)
        (request,) = server.requests
    reply = json.loads(text)
    assert status == 200 and reply["finish_reason"] == "TOOL_CALL"
    (call,) = reply["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "Trip"
    assert set(json.loads(call["function"]["arguments"])) == {"city", "days"}
    assert reply["message"]["role"] == "assistant" and reply["message"]["tool_plan"]
    usage = reply["usage"]
    assert usage["billed_units"]["input_tokens"] > 0 and usage["billed_units"]["output_tokens"] > 0
    assert usage["tokens"]["input_tokens"] > usage["billed_units"]["input_tokens"]
    assert "authorization" not in request.headers and request.path == "/v2/chat"


@pytest.mark.parametrize(
    ("unforced", "choice", "answer"),
    [("stray", None, "text"), ("comply", None, "tool"), ("comply", "NONE", "text")],
    ids=["stray", "comply", "none"],
)
def test_cohere_tools_are_optional_unless_required(
    unforced: str, choice: str | None, answer: str
) -> None:
    extra: dict[str, Any] = {"tools": [COHERE_TOOL]}
    if choice is not None:
        extra["tool_choice"] = choice
    with CohereEmulator(unforced=unforced) as server:  # type: ignore[arg-type]
        reply = json.loads(post(server.api_base, cohere_body(**extra), COHERE_HEADERS)[2])
    message = reply["message"]
    if answer == "tool":
        assert message["tool_calls"] and reply["finish_reason"] == "TOOL_CALL"
    else:
        assert "tool_calls" not in message and reply["finish_reason"] == "COMPLETE"
        assert message["content"][0]["type"] == "text"


def test_cohere_response_format_with_a_schema_is_forced_json() -> None:
    with CohereEmulator() as server:
        body = cohere_body(response_format={"type": "json_object", "json_schema": SCHEMA})
        reply = json.loads(post(server.api_base, body, COHERE_HEADERS)[2])
    (block,) = reply["message"]["content"]
    assert set(json.loads(block["text"])) == {"city", "days"}


def test_cohere_checks_the_token_and_the_request_fields() -> None:
    with CohereEmulator() as server:
        no_token = post(server.api_base, cohere_body())
        openai_choice = cohere_body(tools=[COHERE_TOOL], tool_choice={"type": "function"})
        bad_choice = post(server.api_base, openai_choice, COHERE_HEADERS)
        body = cohere_body()
        del body["messages"]
        no_messages = post(server.api_base, body, COHERE_HEADERS)
        v1 = post(server.url + "/v1/chat", cohere_body(), COHERE_HEADERS)
    assert no_token[0] == 401 and json.loads(no_token[2])["message"] == "invalid api token"
    assert bad_choice[0] == 400 and "tool_choice" in json.loads(bad_choice[2])["message"]
    assert no_messages[0] == 400 and "messages" in json.loads(no_messages[2])["message"]
    assert v1[0] == 404
    for _, _, text in (no_token, bad_choice, no_messages, v1):
        assert set(json.loads(text)) == {"id", "message"}


@pytest.mark.parametrize(("fault", "status"), [("429", 429), ("500", 500), ("overloaded", 503)])
def test_cohere_faults_have_cohere_s_error_shape(fault: str, status: int) -> None:
    with CohereEmulator(faults=Faults(retry_after=7)) as server:
        server.script([server.fault(fault)])  # type: ignore[arg-type]
        got, headers, text = post(server.api_base, cohere_body(), COHERE_HEADERS)
    body = json.loads(text)
    assert got == status and set(body) == {"id", "message"}
    assert (headers.get("Retry-After") == "7") == (fault == "429")
    if fault == "429":
        assert "per minute request limit" in body["message"]


def test_cohere_finish_reason_max_tokens() -> None:
    with CohereEmulator() as server:
        server.script([Reply(content="Cut", finish_reason="length")])
        reply = json.loads(post(server.api_base, cohere_body(), COHERE_HEADERS)[2])
    assert reply["finish_reason"] == "MAX_TOKENS"
    assert reply["message"]["content"] == [{"type": "text", "text": "Cut"}]


# ---------------------------------------------------------------------------------------
# Shared behaviour


@pytest.mark.parametrize("name", ["anthropic", "ollama", "gemini", "cohere"])
def test_malformed_faults_cut_the_provider_s_body_in_half(name: str) -> None:
    server = make_emulator(name, faults=Faults(rate_malformed=1.0))
    with server:
        url, body, headers = _hello(server)
        status, _, text = post(url, body, headers)
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


@pytest.mark.parametrize("name", ["anthropic", "ollama", "gemini", "cohere"])
def test_replies_are_deterministic_per_prompt_and_requests_are_counted(name: str) -> None:
    with make_emulator(name) as first, make_emulator(name) as second:
        texts = []
        for server in (first, second, first):
            url, body, headers = _hello(server)
            texts.append(post(url, body, headers)[2])
        assert first.stats.requests == 2 and second.stats.by_status == {200: 1}
    strip = [json.dumps(_content(name, json.loads(t))) for t in texts]
    assert strip[0] == strip[1] == strip[2]


def _hello(server: Emulator) -> tuple[str, dict[str, Any], dict[str, str]]:
    if isinstance(server, AnthropicEmulator):
        return server.url + "/v1/messages", anthropic_body(), ANTHROPIC_HEADERS
    if isinstance(server, GeminiEmulator):
        return server.api_base + "/models/m:generateContent", gemini_body(), GEMINI_HEADERS
    if isinstance(server, CohereEmulator):
        return server.api_base, cohere_body(), COHERE_HEADERS
    body = {"model": "llama3.1", "prompt": "Plan a trip to Lisbon.", "stream": False}
    return server.url + "/api/generate", body, {}


def _content(name: str, reply: dict[str, Any]) -> Any:
    if name == "anthropic":
        return reply["content"]
    if name == "gemini":
        return reply["candidates"][0]["content"]
    if name == "cohere":
        return reply["message"]
    return reply["response"]


# ---------------------------------------------------------------------------------------
# OpenAI-compatible quirks


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "Plan a trip."}], **extra}


def test_rejects_tools_answers_like_llama_cpp_without_jinja() -> None:
    tool = {"type": "function", "function": {"name": "Trip", "parameters": SCHEMA}}
    with LoopbackServer(quirks=Quirks(rejects_tools=True, tools_error_status=500)) as server:
        status, _, text = post(server.api_base + "/chat/completions", _chat(tools=[tool]))
        plain = post(server.api_base + "/chat/completions", _chat())
    assert status == 500
    assert json.loads(text) == {
        "error": {
            "code": 500,
            "message": "tools param requires --jinja flag",
            "type": "server_error",
        }
    }
    assert plain[0] == 200


def test_fenced_json_ignores_tools_and_fences_the_object() -> None:
    tool = {"type": "function", "function": {"name": "Trip", "parameters": SCHEMA}}
    with LoopbackServer(quirks=Quirks(fenced_json=True)) as server:
        body = _chat(tools=[tool], tool_choice={"type": "function", "function": {"name": "Trip"}})
        reply = json.loads(post(server.api_base + "/chat/completions", body)[2])
    message = reply["choices"][0]["message"]
    assert "tool_calls" not in message and "```json" in message["content"]
    fenced = message["content"].split("```json\n", 1)[1].split("\n```", 1)[0]
    assert set(json.loads(fenced)) == {"city", "days"}


def test_omits_usage_drops_the_usage_object() -> None:
    with LoopbackServer(quirks=Quirks(omits_usage=True)) as server:
        reply = json.loads(post(server.api_base + "/chat/completions", _chat())[2])
    assert "usage" not in reply and reply["choices"][0]["message"]["content"]


def test_every_provider_name_makes_an_emulator() -> None:
    for name in PROVIDERS:
        server = make_emulator(name)
        assert isinstance(server, Emulator)
    assert make_emulator("no-usage").quirks == Quirks(omits_usage=True)  # type: ignore[attr-defined]
    assert isinstance(make_emulator("cohere"), CohereEmulator)
    with pytest.raises(ValueError, match="choose one of"):
        make_emulator("mistral")


# ---------------------------------------------------------------------------------------
# promptflow serve


@pytest.mark.parametrize(
    ("provider", "model", "path"),
    [
        ("anthropic", "anthropic/claude-3-5-haiku-20241022", "/v1/messages"),
        ("gemini", "gemini/gemini-1.5-flash", "/v1beta/models/m:generateContent"),
        ("cohere", "cohere/command-r-08-2024", "/v2/chat"),
    ],
)
def test_serve_prints_how_to_reach_it_and_stops_on_ctrl_c(
    provider: str, model: str, path: str
) -> None:
    command = [
        sys.executable,
        "-m",
        "promptflow_dsl",
        "serve",
        "--provider",
        provider,
        "--port",
        "0",
    ]
    command += ["--rate-429", "1", "--retry-after", "4"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first, second = process.stdout.readline(), process.stdout.readline()
        url = first.split(" at ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        assert f"--model {model} --api-base {url}" in second
        body, headers = {
            "anthropic": (anthropic_body(), ANTHROPIC_HEADERS),
            "gemini": (gemini_body(), GEMINI_HEADERS),
            "cohere": (cohere_body(), COHERE_HEADERS),
        }[provider]
        status, response_headers, text = post(url + path, body, headers)
        assert status == 429
        if provider == "anthropic":
            assert response_headers["retry-after"] == "4"
        elif provider == "cohere":
            assert response_headers["Retry-After"] == "4"
        else:
            assert json.loads(text)["error"]["details"][-1]["retryDelay"] == "4s"
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "stopped after 1 requests" in out


def test_serve_refuses_an_unknown_provider() -> None:
    command = [sys.executable, "-m", "promptflow_dsl", "serve", "--provider", "mistral"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env={**os.environ})
    assert done.returncode == 1 and "choose one of openai, anthropic" in done.stderr
