"""End to end: real LiteLLM and Instructor, real HTTP, the loopback server."""

import polars as pl
import pytest

from promptflow_dsl import (
    InstructionList,
    Model,
    ProviderError,
    RetryPolicy,
    ValidationExhaustedError,
    explode,
    self_instruct,
    text_generation,
)
from promptflow_dsl.testing import LoopbackServer, Reply

FAST_RETRY = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.05)
DOCS = pl.DataFrame(
    {"input": [f"Document {i} is about rivers, valleys and erosion." for i in range(6)]}
)


def model_at(server: LoopbackServer, **options) -> Model:
    return Model(
        "openai/loopback-model", api_base=server.api_base, api_key="sk-test-key", **options
    )


def test_direct_call_structured_tools_mode(loopback_server):
    loopback_server.script([{"instructions": ["Explain erosion.", "List three rivers."]}])
    result = self_instruct("Rivers shape valleys.", model=model_at(loopback_server))
    assert result == InstructionList(instructions=["Explain erosion.", "List three rivers."])
    (request,) = loopback_server.requests
    assert request.body["tools"][0]["function"]["name"] == "InstructionList"
    assert "Rivers shape valleys." in request.text


def test_direct_call_structured_json_mode(loopback_server):
    loopback_server.script([{"instructions": ["Describe a delta."]}])
    result = self_instruct(
        "Deltas form at river mouths.", model=model_at(loopback_server, mode="json")
    )
    assert result.instructions == ["Describe a delta."]
    (request,) = loopback_server.requests
    assert "tools" not in request.body
    assert "instructions" in request.text  # the schema travels in the prompt


def test_direct_call_text_path_goes_through_the_parser(loopback_server):
    loopback_server.script(["1. Explain erosion.\n\n2) List rivers.\n- Explain erosion."])
    result = self_instruct("Rivers.", model=model_at(loopback_server, mode="text"))
    assert result.instructions == ["Explain erosion.", "List rivers."]
    assert "tools" not in loopback_server.requests[0].body


def test_text_generation_defaults_to_text(loopback_server):
    loopback_server.script(["  A river is a natural stream of water.  "])
    result = text_generation("What is a river?", model=model_at(loopback_server))
    assert result.generation == "A river is a natural stream of water."


def test_the_brief_recipe_against_the_loopback_server(loopback_server):
    recipe = (
        self_instruct.step(num_instructions=3)
        >> explode("instructions", into="instruction")
        >> text_generation.step()
    )
    out = recipe.run(DOCS, model=model_at(loopback_server), max_concurrency=50, cache=False)
    assert {"input", "instruction", "generation", "model_name"} <= set(out.columns)
    assert out["error"].is_null().all()
    assert out["generation"].is_not_null().all() and out["instruction"].is_not_null().all()
    assert set(out["model_name"]) == {"openai/loopback-model"}
    assert out["usage"].struct.field("input_tokens").min() > 0
    endpoints = {r.endpoint for r in loopback_server.requests}
    assert endpoints == {"chat"}


def test_calls_run_concurrently_under_the_limit():
    with LoopbackServer(latency=0.15) as server:
        frame = pl.DataFrame({"input": [f"Topic number {i}" for i in range(40)]})
        self_instruct.step().run(frame, model=model_at(server), max_concurrency=8, cache=False)
        assert server.stats.requests == 40
        assert 6 <= server.stats.max_in_flight <= 8


def test_a_500_on_some_rows_leaves_the_others_done():
    def responder(request):
        return Reply(status=500) if "BROKEN" in request.text else None

    with LoopbackServer(responder=_fallback(responder)) as server:
        frame = pl.DataFrame({"input": ["fine one", "BROKEN two", "fine three", "BROKEN four"]})
        out = self_instruct.step().run(frame, model=model_at(server), cache=False, retry=FAST_RETRY)
    ok = out.filter(pl.col("error").is_null())
    failed = out.filter(pl.col("error").is_not_null())
    assert ok["input"].to_list() == ["fine one", "fine three"]
    assert ok["instructions"].list.len().min() > 0
    assert failed["input"].to_list() == ["BROKEN two", "BROKEN four"]  # inputs kept
    assert failed["instructions"].is_null().all()
    errors = failed["error"].struct.unnest()
    assert errors["step"].to_list() == ["self_instruct"] * 2
    assert errors["type"].to_list() == ["ProviderError"] * 2
    assert errors["attempts"].to_list() == [2, 2]  # retried once, as the policy says


def test_invalid_structured_reply_records_the_raw_text(loopback_server):
    loopback_server.script([{"wrong": "shape"}] * 3)
    out = self_instruct.step().run(
        pl.DataFrame({"input": ["x"]}), model=model_at(loopback_server), cache=False
    )
    error = out["error"][0]
    assert error["type"] == "ValidationExhaustedError"
    assert '"wrong"' in error["raw_reply"]
    with pytest.raises(ValidationExhaustedError) as info:
        loopback_server.script([{"wrong": "shape"}] * 3)
        self_instruct("x", model=model_at(loopback_server), cache=False)
    assert '"wrong"' in info.value.raw_text


def test_api_key_never_appears_in_errors():
    with LoopbackServer(responder=lambda request: Reply(status=401)) as server:
        with pytest.raises(ProviderError) as info:
            self_instruct("x", model=model_at(server), cache=False)
        out = self_instruct.step().run(
            pl.DataFrame({"input": ["x"]}), model=model_at(server), cache=False
        )
    assert "sk-test-key" not in str(info.value) and "sk-test-key" not in repr(info.value)
    assert "sk-test-key" not in str(out.to_dicts())
    assert "API key" in str(info.value) and "OPENAI_API_KEY" in str(info.value)


def test_missing_column_fails_before_the_first_call(loopback_server):
    recipe = (
        self_instruct.step()
        >> explode("instructions", into="instruction")
        >> text_generation.step()
    )
    with pytest.raises(Exception, match="needs column 'input'"):
        recipe.run(pl.DataFrame({"text": ["x"]}), model=model_at(loopback_server))
    assert loopback_server.stats.requests == 0


def test_cached_rerun_makes_zero_calls(loopback_server, tmp_path):
    recipe = (
        self_instruct.step()
        >> explode("instructions", into="instruction")
        >> text_generation.step()
    )
    cache = tmp_path / "cache.sqlite"
    first = recipe.execute(DOCS, model=model_at(loopback_server), cache=cache)
    calls = loopback_server.stats.requests
    again = recipe.execute(DOCS, model=model_at(loopback_server), cache=cache)
    assert loopback_server.stats.requests == calls
    assert again.summary.calls == 0 and again.summary.cache_hits == again.frame.height + DOCS.height
    assert again.frame.drop("usage").equals(first.frame.drop("usage"))


def _fallback(responder):
    """A responder that defers to the server's default when it returns None."""

    def respond(request):
        return responder(request) or _default(request)

    return respond


def _default(request):
    from promptflow_dsl.testing import default_responder

    return default_responder(request)
