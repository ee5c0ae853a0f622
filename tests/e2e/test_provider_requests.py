"""What goes out to providers whose mapping in LiteLLM needs help: forcing kept, no stray fields."""

import pytest

from promptflow_dsl import Model, ProviderError, self_instruct
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
