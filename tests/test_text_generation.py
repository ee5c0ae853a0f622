import polars as pl
import pytest

from promptflow_dsl import MissingColumnError, ParseError, TemplateError, text_generation


def test_template_renders_over_row_columns():
    messages = text_generation.render(
        "Summarise.", template="{{ instruction }}\n\n{{ document }}", document="D"
    )
    assert messages == [{"role": "user", "content": "Summarise.\n\nD"}]


def test_unbound_template_variable_is_an_error_not_an_empty_string():
    with pytest.raises(TemplateError, match="document"):
        text_generation.render("Summarise.", template="{{ instruction }} {{ document }}")


def test_template_variables_become_needed_columns():
    step = text_generation.step(template="{{ instruction }} about {{ topic }}")
    assert step.contract.needs == {"instruction", "topic"}
    with pytest.raises(MissingColumnError, match="'topic'"):
        step.then(step).run(pl.DataFrame({"instruction": ["x"]}), model="mock")


def test_template_row_values_reach_the_prompt():
    step = text_generation.step(template="{{ instruction }} :: {{ topic }}")
    out = (step >> step.named("again")).run(
        pl.DataFrame({"instruction": ["Q"], "topic": ["owls"]}), model="mock"
    )
    assert out["generation"][0]


def test_empty_reply_is_a_parse_error():
    with pytest.raises(ParseError):
        text_generation.parse("  \n ")
