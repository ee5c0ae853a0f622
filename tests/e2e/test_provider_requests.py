"""What goes out to providers whose mapping in LiteLLM needs help: forcing kept, no stray fields."""

import pytest

from promptflow_dsl import Model, ProviderError, self_instruct, text_generation
from promptflow_dsl.testing import LoopbackServer, Reply


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


def test_huggingface_requests_carry_no_retry_count_and_are_retried_once_each():
    with LoopbackServer() as server:
        server.script([Reply(status=500), "Fine."])
        model = Model("huggingface/x", api_base=server.api_base, api_key="hf_test1234567")
        assert text_generation("Q?", model=model, cache=False).generation == "Fine."
        bodies = [r.body for r in server.requests]
    assert len(bodies) == 2 and all("max_retries" not in b for b in bodies)
