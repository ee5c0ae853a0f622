import asyncio

import pytest
from pydantic import BaseModel

from promptflow_dsl import InstructionList, PromptProgram, self_instruct, technique, text_generation


class Echo(BaseModel):
    text: str


@technique(result=Echo, parser=lambda text: Echo(text=text.strip()), decoding="text")
def echo(message: str, *, loud: bool = False) -> list:
    return [{"role": "user", "content": message.upper() if loud else message}]


def test_render_returns_fresh_messages_without_calling():
    first = echo.render("hi", loud=True)
    first.append({"role": "user", "content": "mutated"})
    assert echo.render("hi", loud=True) == [{"role": "user", "content": "HI"}]


def test_program_is_a_value_with_type_and_parser():
    program = echo.program("hi")
    assert isinstance(program, PromptProgram)
    assert program.result_type is Echo and program.decoding == "text"
    assert program.parse(" x ") == Echo(text="x")


def test_wrong_arguments_name_the_signature():
    with pytest.raises(TypeError, match=r"echo: .*Signature: echo\(message"):
        echo.program("a", "b")


def test_self_instruct_prompt_carries_inputs_and_attributes():
    (system, user) = self_instruct.render(
        "Tides follow the moon.", "Be terse.", num_instructions=7, application_description="a tutor"
    )
    assert system == {"role": "system", "content": "Be terse."}
    assert "Write 7 diverse queries" in user["content"] and "a tutor" in user["content"]
    assert (
        user["content"]
        .rstrip()
        .endswith("Exactly 7 queries, one per line, with no numbering, bullets or commentary.")
    )
    assert "Tides follow the moon." in user["content"]


def test_direct_call_with_offline_model_returns_the_result_type():
    result = self_instruct("Tides follow the moon.", model="mock")
    assert isinstance(result, InstructionList) and result.instructions


def test_sync_call_works_inside_a_running_event_loop():
    async def notebook_cell():
        return self_instruct("Tides follow the moon.", model="mock")

    assert isinstance(asyncio.run(notebook_cell()), InstructionList)


def test_async_twin():
    result = asyncio.run(text_generation.acall("Say hi", model="mock"))
    assert result.generation


def test_step_rejects_unknown_attributes_and_inputs():
    with pytest.raises(TypeError, match="unknown attributes"):
        self_instruct.step(num_instruction=3)
    with pytest.raises(TypeError, match="not inputs"):
        self_instruct.step(inputs={"document": "text"})


def test_step_maps_inputs_to_columns():
    step = self_instruct.step(inputs={"input": "document"})
    assert step.contract.needs == {"document"}
    assert step.contract.optional == {"system_prompt"}
    assert step.contract.adds[:1] == ("instructions",)


def test_the_offline_model_makes_as_many_items_as_the_prompt_asks_for():
    from promptflow_dsl import self_instruct

    for count in (1, 4, 9):
        result = self_instruct("Tides follow the moon.", model="mock", num_instructions=count)
        assert len(result.instructions) == count
    assert self_instruct.program("Tides.", num_instructions=6).sizes == {"instructions": 6}
    assert self_instruct.program("Tides.").sizes == {"instructions": 5}  # the default
