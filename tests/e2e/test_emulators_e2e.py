"""The library against each provider's own wire format: real LiteLLM and Instructor over HTTP.

Every cell of the provider matrix passes. A cell the library gets wrong goes in as
``pytest.mark.xfail(strict=True, reason=...)`` saying what is missing, so the change that
fixes it flips the test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl
import pytest

from promptflow_dsl import (
    Model,
    ModelSettingError,
    ProviderError,
    RunAbortedError,
    UserAssistantPair,
    ValidationExhaustedError,
    evol_instruct,
    explode,
    genstruct,
    self_instruct,
    text_generation,
)
from promptflow_dsl.testing import (
    AnthropicEmulator,
    CohereEmulator,
    Emulator,
    Faults,
    GeminiEmulator,
    LoopbackServer,
    OllamaEmulator,
    Quirks,
    Reply,
)


@dataclass(frozen=True)
class Provider:
    """One row of the matrix: an emulator and the model string that reaches it."""

    emulator: type[Emulator]
    model: str
    key: str | None

    def at(self, server: Emulator, **options: object) -> Model:
        return Model(self.model, api_base=server.api_base, api_key=self.key, **options)  # type: ignore[arg-type]


ANTHROPIC = Provider(AnthropicEmulator, "anthropic/claude-3-5-haiku-20241022", "sk-ant-test")
OLLAMA = Provider(OllamaEmulator, "ollama/llama3.1", None)
OLLAMA_CHAT = Provider(OllamaEmulator, "ollama_chat/llama3.1", None)
GEMINI = Provider(GeminiEmulator, "gemini/gemini-1.5-flash", "test-key")
COHERE = Provider(CohereEmulator, "cohere/command-r-08-2024", "test-key")
NATIVE = {
    "anthropic": ANTHROPIC,
    "ollama": OLLAMA,
    "ollama_chat": OLLAMA_CHAT,
    "gemini": GEMINI,
    "cohere": COHERE,
}


@pytest.fixture
def quiet_anthropic(monkeypatch: pytest.MonkeyPatch) -> None:
    # LiteLLM fetches Anthropic's beta-header table from GitHub unless this is set.
    monkeypatch.setenv("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")


def serve(provider: Provider, **options: object) -> Emulator:
    return provider.emulator(**options)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# A structured result


@pytest.mark.parametrize(
    "name",
    [
        "anthropic",
        "gemini",
        "ollama",
        "ollama_chat",
        "cohere",
    ],
)
def test_structured_result_in_the_default_mode(name: str, quiet_anthropic: None) -> None:
    provider = NATIVE[name]
    with serve(provider) as server:
        result = self_instruct("Rivers carve valleys.", model=provider.at(server), cache=False)
        assert result.instructions and all(isinstance(i, str) and i for i in result.instructions)
        assert server.stats.by_status == {200: 1}


@pytest.mark.parametrize("name", ["ollama", "ollama_chat"])
def test_ollama_structured_result_with_the_schema_in_format(name: str) -> None:
    provider = NATIVE[name]
    with serve(provider) as server:
        model = provider.at(server, mode="json_schema")
        result = self_instruct("Rivers carve valleys.", model=model, cache=False)
        assert result.instructions
        (request,) = server.requests
        assert request.body["format"]["required"] == ["instructions"]


def test_anthropic_forces_the_tool_by_name(quiet_anthropic: None) -> None:
    with AnthropicEmulator() as server:
        self_instruct("Rivers carve valleys.", model=ANTHROPIC.at(server), cache=False)
        (request,) = server.requests
        assert request.body["tool_choice"]["type"] == "tool"
        assert request.body["tool_choice"]["name"] == request.body["tools"][0]["name"]
        assert request.headers["anthropic-version"] and "x-api-key" not in request.headers


def test_gemini_forces_the_function_with_mode_any() -> None:
    with GeminiEmulator() as server:
        self_instruct("Rivers carve valleys.", model=GEMINI.at(server), cache=False)
        (request,) = server.requests
        assert request.body["toolConfig"]["functionCallingConfig"]["mode"] == "ANY"
        assert request.path == "/v1beta/models/gemini-1.5-flash:generateContent"


def test_cohere_forces_the_tool_with_required() -> None:
    # LiteLLM drops the tool_choice Instructor sends for Cohere; the emulated model, like
    # the real one, may then answer in prose. Cohere's own REQUIRED must reach the wire.
    with CohereEmulator() as server:
        self_instruct("Rivers carve valleys.", model=COHERE.at(server), cache=False)
        (request,) = server.requests
        assert request.body["tool_choice"] == "REQUIRED"
        assert request.body["tools"][0]["function"]["name"]
        assert request.path == "/v2/chat" and "authorization" not in request.headers


def test_gemini_json_schema_mode_is_refused_where_litellm_would_drop_the_schema() -> None:
    # LiteLLM sends gemini-1.5-flash only response_mime_type in json_schema mode: the
    # schema would be dropped silently, so the call is refused before it is made.
    with GeminiEmulator() as server:
        model = GEMINI.at(server, mode="json_schema")
        with pytest.raises(ModelSettingError, match="would drop the schema.*mode='tools'"):
            self_instruct("Rivers carve valleys.", model=model, cache=False)
        assert server.stats.requests == 0


@pytest.mark.parametrize("mode", ["json_schema", "json"])
def test_cohere_json_modes_are_refused_where_litellm_would_drop_response_format(mode) -> None:
    # LiteLLM's Cohere provider takes no response_format, and drop_params would remove it
    # silently: the reply would not be held to the schema. Refused before any call.
    with CohereEmulator() as server:
        model = COHERE.at(server, mode=mode)
        with pytest.raises(ModelSettingError, match="drops response_format.*mode='tools'"):
            self_instruct("Rivers carve valleys.", model=model, cache=False)
        assert server.stats.requests == 0


# ---------------------------------------------------------------------------------------
# Text generation, usage and cost


@pytest.mark.parametrize("name", list(NATIVE))
def test_text_generation(name: str, quiet_anthropic: None) -> None:
    provider = NATIVE[name]
    with serve(provider) as server:
        server.script(["Rivers carve valleys over millions of years."])
        result = text_generation("How do valleys form?", model=provider.at(server), cache=False)
        assert result.generation == "Rivers carve valleys over millions of years."
        (request,) = server.requests
        assert "How do valleys form?" in request.text


@pytest.mark.parametrize("name", list(NATIVE))
def test_usage_is_filled_in_the_usage_column(name: str, quiet_anthropic: None) -> None:
    provider = NATIVE[name]
    frame = pl.DataFrame({"instruction": ["Explain tides.", "List three rivers."]})
    with serve(provider) as server:
        out = text_generation.step().run(
            frame, model=provider.at(server), cache=False, max_concurrency=1
        )
    usage = out["usage"].struct.unnest()
    assert out["error"].is_null().all()
    assert (usage["input_tokens"] > 0).all() and (usage["output_tokens"] > 0).all()
    if name in ("anthropic", "cohere"):  # the ones with a price in LiteLLM's map
        assert (usage["cost_usd"] > 0).all()


def test_evol_instruct_with_answers_makes_every_call(quiet_anthropic: None) -> None:
    with AnthropicEmulator(unforced="comply") as server:
        result = evol_instruct("Sort a list.", model=ANTHROPIC.at(server), cache=False)
        assert result.evolved_instruction
        assert server.stats.requests >= 1 and server.stats.by_status == {200: server.stats.requests}


# ---------------------------------------------------------------------------------------
# A 429 with the provider's retry signal


@pytest.mark.parametrize("name", list(NATIVE))
def test_a_429_is_retried_until_the_call_succeeds(name: str, quiet_anthropic: None) -> None:
    provider = NATIVE[name]
    with serve(provider, faults=Faults(retry_after=0.2)) as server:
        server.script([server.fault("429"), "Rivers carve valleys."])
        result = text_generation("How do valleys form?", model=provider.at(server), cache=False)
        assert result.generation == "Rivers carve valleys."
        assert server.stats.requests == 2 and server.stats.by_status == {429: 1, 200: 1}


@pytest.mark.parametrize(
    "name",
    [
        "anthropic",
        "ollama",
        "gemini",
        "cohere",
    ],
)
def test_the_retry_waits_as_long_as_the_provider_asks(name: str, quiet_anthropic: None) -> None:
    provider = NATIVE[name]
    with serve(provider, faults=Faults(retry_after=2)) as server:
        server.script([server.fault("429"), "Rivers carve valleys."])
        started = time.perf_counter()
        text_generation("How do valleys form?", model=provider.at(server), cache=False)
        # The engine's own first backoff is at most 0.5 s: only the provider's 2 s gets here.
        assert time.perf_counter() - started >= 1.9


def test_an_anthropic_overload_is_retried(quiet_anthropic: None) -> None:
    with AnthropicEmulator() as server:
        server.script([server.fault("overloaded"), "Fine."])
        assert text_generation("Hi?", model=ANTHROPIC.at(server), cache=False).generation == "Fine."
        assert server.stats.by_status == {529: 1, 200: 1}


# ---------------------------------------------------------------------------------------
# Raw completion prompts


@pytest.mark.parametrize("name", ["anthropic", "gemini", "ollama_chat", "cohere"])
def test_genstruct_on_a_chat_only_provider(name: str, quiet_anthropic: None) -> None:
    provider = NATIVE[name]
    with serve(provider) as server:
        pair = genstruct("Tides", "The moon pulls the sea.", model=provider.at(server), cache=False)
        assert isinstance(pair, UserAssistantPair) and pair.user and pair.assistant


def test_genstruct_on_ollama_sends_the_prompt_raw() -> None:
    with OllamaEmulator() as server:
        server.script(["Why do tides happen?\n\n[[[Assistant]]] The moon pulls the sea."])
        pair = genstruct("Tides", "The moon pulls the sea.", model=OLLAMA.at(server), cache=False)
        assert pair.assistant == "The moon pulls the sea."
        (request,) = server.requests
        assert request.endpoint == "generate" and request.body.get("raw") is True
        assert request.body["prompt"].startswith("[[[Title]]] Tides")  # no template around it


def test_ollama_raw_keeps_the_user_s_extra_body() -> None:
    with OllamaEmulator() as server:
        server.script(["Why do tides happen?\n\n[[[Assistant]]] The moon pulls the sea."])
        model = OLLAMA.at(server, params={"extra_body": {"keep_alive": "5m"}})
        genstruct("Tides", "The moon pulls the sea.", model=model, cache=False)
        (request,) = server.requests
        assert request.body["raw"] is True and request.body["keep_alive"] == "5m"


def test_ollama_chat_prompts_are_not_sent_raw() -> None:
    with OllamaEmulator() as server:
        text_generation("How do valleys form?", model=OLLAMA.at(server), cache=False)
        (request,) = server.requests
        assert "raw" not in request.body  # a chat prompt keeps the model's template


def test_cohere_forcing_keeps_the_user_s_extra_body() -> None:
    with CohereEmulator() as server:
        model = COHERE.at(server, params={"extra_body": {"strict_tools": True}})
        self_instruct("Rivers carve valleys.", model=model, cache=False)
        (request,) = server.requests
        assert request.body["tool_choice"] == "REQUIRED" and request.body["strict_tools"] is True


# ---------------------------------------------------------------------------------------
# Messages


def test_an_anthropic_api_base_ending_in_v1_reaches_a_doubled_path(quiet_anthropic: None) -> None:
    with AnthropicEmulator() as server:
        model = Model(ANTHROPIC.model, api_base=server.url + "/v1", api_key="sk-ant-test")
        with pytest.raises(ProviderError):
            text_generation("Hi?", model=model, cache=False)
        assert server.requests[0].path == "/v1/v1/messages"
        assert server.stats.by_status == {404: server.stats.requests}


def test_a_cohere_api_base_without_its_chat_path_gets_a_404_that_says_so() -> None:
    with CohereEmulator() as server:
        model = Model(COHERE.model, api_base=server.url, api_key="test-key")
        with pytest.raises(ProviderError, match=r"whole chat URL: use '.*/v2/chat'"):
            text_generation("Hi?", model=model, cache=False)
        assert server.stats.by_status == {404: server.stats.requests}


def test_an_anthropic_404_names_the_url(quiet_anthropic: None) -> None:
    with AnthropicEmulator() as server:
        model = Model(ANTHROPIC.model, api_base=server.url + "/v1", api_key="sk-ant-test")
        with pytest.raises(ProviderError, match="/v1/v1/messages"):
            text_generation("Hi?", model=model, cache=False)


def test_anthropic_json_schema_fetches_nothing_from_the_internet() -> None:
    # A fresh interpreter: LiteLLM caches the table for the life of the process.
    script = textwrap.dedent(
        """
        import socket
        reached = []
        real = socket.getaddrinfo
        def guard(host, *args, **kwargs):
            if not str(host).startswith(("127.", "localhost")):
                reached.append(host)
                raise OSError("no network in tests")
            return real(host, *args, **kwargs)
        socket.getaddrinfo = guard
        from promptflow_dsl import Model, self_instruct
        from promptflow_dsl.testing import AnthropicEmulator
        with AnthropicEmulator() as server:
            model = Model("anthropic/claude-sonnet-4-5", api_base=server.api_base,
                          api_key="sk-ant-test", mode="json_schema")
            self_instruct("Rivers.", model=model, cache=False)
        print(sorted(set(reached)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------------------------------
# OpenAI-compatible quirks


@pytest.fixture
def rejects_tools() -> Iterator[LoopbackServer]:
    with LoopbackServer(quirks=Quirks(rejects_tools=True)) as server:
        yield server


def openai_at(server: LoopbackServer, **options: object) -> Model:
    return Model("openai/local-model", api_base=server.api_base, api_key="sk-test", **options)  # type: ignore[arg-type]


def test_a_server_that_rejects_tools_falls_back(rejects_tools: LoopbackServer) -> None:
    result = self_instruct("Rivers.", model=openai_at(rejects_tools), cache=False)
    assert result.instructions


def test_a_tools_refusal_is_not_diagnosed_as_a_bad_model_or_key(
    rejects_tools: LoopbackServer,
) -> None:
    frame = pl.DataFrame({"input": [f"River {i}." for i in range(12)]})
    try:
        self_instruct.step().run(frame, model=openai_at(rejects_tools, mode="tools"), cache=False)
    except RunAbortedError as exc:
        message = str(exc)
    else:
        message = ""
    assert "api key" not in message.lower()


@pytest.mark.parametrize("mode", ["json_schema", "json", "md_json"])
def test_a_server_that_rejects_tools_serves_the_json_modes(
    rejects_tools: LoopbackServer, mode: str
) -> None:
    result = self_instruct("Rivers.", model=openai_at(rejects_tools, mode=mode), cache=False)
    assert result.instructions and rejects_tools.stats.by_status == {200: 1}


@pytest.mark.parametrize(
    "mode",
    [
        "tools",
        "json",
        "md_json",
    ],
)
def test_a_server_that_answers_in_a_json_fence(mode: str) -> None:
    with LoopbackServer(quirks=Quirks(fenced_json=True)) as server:
        result = self_instruct("Rivers.", model=openai_at(server, mode=mode), cache=False)
        assert result.instructions and server.stats.requests == 1


def test_a_server_without_usage_still_counts_tokens() -> None:
    frame = pl.DataFrame({"instruction": ["Explain tides."]})
    with LoopbackServer(quirks=Quirks(omits_usage=True)) as server:
        out = text_generation.step().run(frame, model=openai_at(server), cache=False)
    usage = out["usage"].struct.unnest()
    assert usage["input_tokens"][0] > 0 and usage["output_tokens"][0] > 0
    assert usage["tokens_estimated"][0] is True  # said so, not passed off as reported


def test_validation_failure_names_the_model_s_stray_reply() -> None:
    with OllamaEmulator() as server:
        with pytest.raises(ValidationExhaustedError):
            self_instruct("Rivers.", model=OLLAMA_CHAT.at(server, mode="json"), cache=False)
        # format: "json", so every reply is JSON, and every reply misses the required field.
        assert server.stats.requests == 3
        assert all(r.body["format"] == "json" for r in server.requests)


# ---------------------------------------------------------------------------------------
# The rest of the matrix: every provider row, a multi-call technique and a recipe


def _matrix_server(name: str) -> tuple[Emulator, Model]:
    if name in NATIVE:
        server = serve(NATIVE[name], unforced="comply")
        return server, NATIVE[name].at(server.start())
    quirks = {
        "openai": Quirks(),
        "hosted_vllm": Quirks(),
        "rejects_tools": Quirks(rejects_tools=True),
        "fenced_json": Quirks(fenced_json=True),
        "omits_usage": Quirks(omits_usage=True),
    }[name]
    server = LoopbackServer(quirks=quirks).start()
    prefix = "hosted_vllm" if name == "hosted_vllm" else "openai"
    return server, Model(f"{prefix}/local-model", api_base=server.api_base, api_key="sk-test")


MATRIX = [*NATIVE, "openai", "hosted_vllm", "rejects_tools", "fenced_json", "omits_usage"]


@pytest.mark.parametrize("name", MATRIX)
def test_evol_instruct_with_answers_on_every_provider(name: str, quiet_anthropic: None) -> None:
    server, model = _matrix_server(name)
    try:
        result = evol_instruct(
            "Sort a list.", model=model, num_evolutions=2, generate_answers=True, cache=False
        )
    finally:
        server.stop()
    assert result.evolved_instruction and result.answer
    assert server.stats.requests >= 3  # two evolutions and an answer


@pytest.mark.parametrize("name", MATRIX)
def test_a_three_step_recipe_of_20_rows_on_every_provider(name: str, quiet_anthropic: None) -> None:
    recipe = (
        self_instruct.step(num_instructions=2)
        >> explode("instructions", into="instruction")
        >> text_generation.step()
    )
    frame = pl.DataFrame({"input": [f"Document {i} is about rivers." for i in range(20)]})
    server, model = _matrix_server(name)
    try:
        result = recipe.execute(frame, model=model, cache=False, max_concurrency=4)
    finally:
        server.stop()
    out = result.frame
    assert out["error"].is_null().all(), out["error"].drop_nulls().to_list()[:1]
    assert out.height == 40 and out["generation"].is_not_null().all()
    usage = out["usage"].struct.unnest()
    assert (usage["input_tokens"] > 0).all() and (usage["output_tokens"] > 0).all()
    assert result.summary.calls == server.stats.requests


COMPATIBLE = ["openai", "hosted_vllm", "rejects_tools", "fenced_json", "omits_usage"]


@pytest.mark.parametrize("name", COMPATIBLE)
def test_a_raw_prompt_reaches_the_completion_endpoint_of_compatible_servers(name: str) -> None:
    server, model = _matrix_server(name)
    try:
        server.script(["Why do tides happen?\n[[[Assistant]]] The moon pulls the sea."])
        pair = genstruct("Tides", "The moon pulls the sea.", model=model, cache=False)
    finally:
        server.stop()
    assert pair.assistant == "The moon pulls the sea."
    assert [r.endpoint for r in server.requests] == ["completions"]


@pytest.mark.parametrize("name", COMPATIBLE)
def test_a_429_with_retry_after_on_compatible_servers(name: str) -> None:
    server, model = _matrix_server(name)
    try:
        server.script([Reply(status=429, headers={"retry-after": "1"})])
        began = time.monotonic()
        result = text_generation("Q?", model=model, cache=False)
        waited = time.monotonic() - began
    finally:
        server.stop()
    assert result.generation and waited >= 1.0
    assert server.stats.by_status == {429: 1, 200: 1}
