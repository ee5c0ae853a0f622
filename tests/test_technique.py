import asyncio
import re

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


@pytest.mark.parametrize(
    ("value", "got"), [([1, 2], "got list [1, 2]"), ({"a": 1}, "got dict"), (True, "got bool")]
)
def test_a_value_that_is_not_text_is_a_clear_input_error(value, got):
    from promptflow_dsl import InputTypeError, PromptflowError

    says = rf"self_instruct: input 'input' must be a valid string, {re.escape(got)}"
    with pytest.raises(InputTypeError, match=says):
        self_instruct(value, model="mock")
    with pytest.raises(PromptflowError, match="input 'input'"):
        self_instruct.render(value)


def test_numbers_in_a_text_input_become_their_text():
    (user,) = self_instruct.render(123)
    assert "123" in user["content"]
    assert self_instruct(2.5, model="mock").instructions


def test_multi_call_techniques_check_their_inputs_too():
    from promptflow_dsl import InputTypeError, evol_instruct

    with pytest.raises(InputTypeError, match="evol_instruct: input 'instruction'"):
        evol_instruct({"text": "Sort a list."}, model="mock")


def test_a_recipe_fails_only_the_rows_with_values_of_the_wrong_type():
    import polars as pl

    rows = pl.DataFrame(
        {"input": ["Owls hunt at night.", 7, ["a", "list"]]}, schema={"input": pl.Object}
    )
    out = self_instruct.step(num_instructions=2).run(rows, model="mock")
    errors = out["error"].to_list()
    assert errors[0] is None and errors[1] is None
    assert out["instructions"][1].len() == 2  # the number was read as the text "7"
    assert errors[2]["type"] == "InputTypeError" and errors[2]["attempts"] == 0
    assert "input 'input' must be a valid string, got list ['a', 'list']" in errors[2]["message"]


@pytest.mark.parametrize("value", [0, -2, "x", 2.5])
def test_attributes_are_checked_when_a_step_is_built_and_when_called(value):
    from promptflow_dsl import AttributeValueError

    with pytest.raises(AttributeValueError, match="attribute 'num_instructions' must be"):
        self_instruct.step(num_instructions=value)
    with pytest.raises(AttributeValueError, match="attribute 'num_instructions' must be"):
        self_instruct("A document.", model="mock", num_instructions=value)


def test_a_range_declared_in_a_users_own_technique_is_checked():
    from typing import Annotated

    from pydantic import Field

    from promptflow_dsl import AttributeValueError

    @technique(result=Echo)
    def shout(message: str, *, times: Annotated[int, Field(ge=1, le=3)] = 1) -> list:
        return [{"role": "user", "content": message * times}]

    assert shout.render("a", times=3)[0]["content"] == "aaa"
    with pytest.raises(AttributeValueError, match="less than or equal to 3"):
        shout.step(times=4)
