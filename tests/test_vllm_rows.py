"""The rows of a vLLM processor: the same prompts as the HTTP path, the same columns and
failures as a local run. The row functions are plain Python, so no GPU or Ray is needed;
tests/cluster/test_vllm.py runs a real processor where vLLM is installed."""

import json

import polars as pl
import pytest

from promptflow_dsl import (
    EngineError,
    InstructionList,
    Model,
    evol_instruct,
    self_instruct,
    text_generation,
)
from promptflow_dsl._ray._vllm import VllmReplies, VllmRequests


def engine_reply(asked: dict, text: str) -> dict:
    """What Ray Data's vLLM stage adds to a row before postprocess."""
    return {**asked, "generated_text": text, "num_input_tokens": 31, "num_generated_tokens": 7}


def test_a_structured_technique_asks_for_its_schema_and_reads_the_reply():
    step = self_instruct.step(num_instructions=2)
    asked = VllmRequests(step)({"input": "Rivers carve valleys."})
    program = self_instruct.program("Rivers carve valleys.", num_instructions=2)
    assert asked["messages"] == program.render()  # the HTTP path's messages
    schema = asked["sampling_params"]["structured_outputs"]["json"]
    assert schema["properties"]["instructions"]["type"] == "array"
    reply = json.dumps({"instructions": ["Explain erosion.", "Name a canyon."]})
    row = VllmReplies(step, "qwen")(engine_reply(asked, reply))
    assert row["instructions"] == ["Explain erosion.", "Name a canyon."]
    assert row["input"] == "Rivers carve valleys." and row["error"] is None
    assert row["model_name"] == "qwen"
    assert row["usage"]["input_tokens"] == 31 and row["usage"]["output_tokens"] == 7
    assert "messages" not in row and "generated_text" not in row


def test_the_step_model_parameters_become_sampling_parameters():
    step = text_generation.step(
        model=Model("x", temperature=0.3, max_tokens=64, params={"top_p": 0.9, "user": "me"})
    )
    sampling = VllmRequests(step)({"instruction": "Hi?"})["sampling_params"]
    assert sampling == {"temperature": 0.3, "max_tokens": 64, "top_p": 0.9}


def test_the_columns_are_those_of_a_local_run():
    step = self_instruct.step(num_instructions=2)
    local = step.run(pl.DataFrame({"input": ["Deltas form at river mouths."]}), model="mock")
    asked = VllmRequests(step)({"input": "Deltas form at river mouths."})
    row = VllmReplies(step, "m")(
        engine_reply(asked, InstructionList(instructions=["a", "b"]).model_dump_json())
    )
    assert set(row) == set(local.columns)


def test_a_reply_that_does_not_read_fails_its_row_and_keeps_the_input():
    step = self_instruct.step()
    asked = VllmRequests(step)({"input": "Glaciers."})
    row = VllmReplies(step, "m")(engine_reply(asked, '{"instructions": "not a list"'))
    assert row["input"] == "Glaciers." and row["instructions"] is None
    assert row["error"]["type"] == "InvalidReplyError" and row["error"]["step"] == "self_instruct"
    assert row["error"]["raw_reply"] == '{"instructions": "not a list"'
    assert row["usage"]["output_tokens"] == 7 and row["model_name"] is None


def test_a_text_technique_goes_through_its_parser():
    step = text_generation.step()
    asked = VllmRequests(step)({"instruction": "Why is the sea salty?"})
    assert "structured_outputs" not in asked["sampling_params"]
    row = VllmReplies(step, "m")(engine_reply(asked, "  Rivers carry salts.  "))
    assert row["generation"] == "Rivers carry salts."


def test_a_null_input_asks_for_one_token_and_fails_as_locally():
    step = text_generation.step()
    asked = VllmRequests(step)({"instruction": None})
    assert asked["sampling_params"] == {"max_tokens": 1}
    row = VllmReplies(step, "m")(engine_reply(asked, "x"))
    local = step.run(
        pl.DataFrame({"instruction": [None]}, schema={"instruction": pl.String}), model="mock"
    )
    assert row["error"]["type"] == local["error"][0]["type"] == "MissingInput"
    assert row["error"]["message"] == local["error"][0]["message"]
    assert row["generation"] is None and row["usage"] is None


def test_a_multi_call_technique_is_refused_with_the_way_out():
    with pytest.raises(EngineError, match="several calls per row.*hosted_vllm"):
        VllmRequests(evol_instruct.step())
    with pytest.raises(EngineError, match="num_generations=3"):
        VllmRequests(text_generation.step(num_generations=3))
