"""What goes out to providers whose mapping in LiteLLM needs help: forcing kept, no stray fields."""

import socket

import pytest

from promptflow_dsl import Model, ProviderError, genstruct, self_instruct
from promptflow_dsl._engine._providers import on_the_wire
from promptflow_dsl.testing import LoopbackServer


def test_cohere_tools_carry_tool_choice_required():
    # Only the request matters here: the loopback server does not speak Cohere's API.
    with LoopbackServer() as server:
        model = Model("cohere/command-r", api_base=server.url, api_key="co-test-123456")
        with pytest.raises(ProviderError):
            self_instruct("Rivers.", model=model, cache=False)
        body = server.requests[0].body
    assert body["tool_choice"] == "REQUIRED" and body["tools"]


def test_mistral_defaults_to_a_json_schema_response_format():
    with LoopbackServer() as server:
        model = Model("mistral/mistral-large-latest", api_base=server.api_base, api_key="m-test-1")
        result = self_instruct("Rivers.", model=model, cache=False)
        body = server.requests[0].body
    assert result.instructions
    assert body["response_format"]["type"] == "json_schema" and "tools" not in body


@pytest.mark.parametrize("base", ["", "/v1", "/v1/chat/completions"])
def test_a_huggingface_endpoint_is_reached_and_no_other_host(base, monkeypatch):
    # LiteLLM's huggingface path looked up huggingface.co for config.json on every call.
    looked_up = []
    real = socket.getaddrinfo

    def recording(host, *args, **kwargs):
        looked_up.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    with LoopbackServer() as server:
        model = Model(
            "huggingface/meta-llama/Llama-3.1-8B-Instruct",
            api_base=server.url + base,
            api_key="hf_test_123456",
        )
        listing = self_instruct("Rivers carve valleys.", model=model, cache=False)
        server.script(["Why do tides happen?\n\n[[[Assistant]]] The moon pulls the sea."])
        pair = genstruct("Tides", "The moon pulls the sea.", model=model, cache=False)
        chat, raw = server.requests[0], server.requests[-1]
    assert listing.instructions and pair.assistant
    assert chat.path == "/v1/chat/completions" and raw.path == "/v1/completions"
    assert chat.body["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert "max_retries" not in chat.body and "num_retries" not in chat.body
    assert all(host.startswith(("127.", "localhost", "::1")) for host in looked_up), looked_up


def test_the_huggingface_router_takes_the_inference_provider_in_the_model_name():
    model = Model("huggingface/together/meta-llama/Llama-3.1-8B-Instruct", api_key="hf_x")
    assert on_the_wire(model) == (
        "openai/meta-llama/Llama-3.1-8B-Instruct:together",
        "https://router.huggingface.co/v1",
        "hf_x",
    )
    assert on_the_wire(Model("huggingface/Qwen/Qwen2.5-7B", api_key="hf_x"))[0] == (
        "openai/Qwen/Qwen2.5-7B"
    )
