import polars as pl
import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

from promptflow_dsl import EvolvedInstruction, ParseError, evol_instruct
from promptflow_dsl.techniques.evol_instruct import (
    MUTATION_TEMPLATES,
    choose_mutation,
    elimination_rule,
    parse_equality,
    parse_rewrite,
)

HEADERS = [
    "",
    "#Rewritten Prompt#:\n",
    "Rewritten Prompt: ",
    "**Rewritten Prompt:**\n",
    "#Created Prompt#:\n",
    "New prompt:\n\n",
    "Here is the rewritten prompt:\n",
    "The Rewritten Instruction: ",
]

body = st.text(min_size=1, max_size=200).map(str.strip).filter(bool)


def clean(text: str) -> bool:
    try:
        return parse_rewrite(text).rewritten_prompt == text
    except ParseError:
        return False


@given(body, st.sampled_from(HEADERS))
def test_round_trip_through_echoed_headers(text, header):
    assume(clean(text))
    note(repr(header + text))
    assert parse_rewrite(header + text).rewritten_prompt == text


@given(st.text())
def test_any_text_parses_or_raises_parse_error_and_is_idempotent(text):
    try:
        once = parse_rewrite(text).rewritten_prompt
    except ParseError as exc:
        assert exc.raw_text == text
        return
    assert once and once == once.strip()
    assert parse_rewrite(once).rewritten_prompt == once


def test_five_default_mutations_keep_input_and_limit_growth():
    assert set(MUTATION_TEMPLATES) == {
        "add_constraints",
        "deepen",
        "concretize",
        "increase_reasoning",
        "breadth",
    }
    for template in MUTATION_TEMPLATES.values():
        assert template.count("{instruction}") == 1
        assert "20 words" in template or "same length" in template
        assert "table" in template and "code" in template


def test_mutation_choice_is_seeded_and_varies():
    picks = [
        choose_mutation(MUTATION_TEMPLATES, seed=7, instruction=f"Task {i}", round=0)
        for i in range(50)
    ]
    again = [
        choose_mutation(MUTATION_TEMPLATES, seed=7, instruction=f"Task {i}", round=0)
        for i in range(50)
    ]
    other = [
        choose_mutation(MUTATION_TEMPLATES, seed=8, instruction=f"Task {i}", round=0)
        for i in range(50)
    ]
    assert picks == again and picks != other and len(set(picks)) == 5


def test_same_seed_same_choices_whatever_the_concurrency_and_chunking():
    frame = pl.DataFrame({"instruction": [f"Explain topic {i}." for i in range(30)]})
    step = evol_instruct.step(num_evolutions=3, seed=11)
    wide = step.run(frame, model="mock", max_concurrency=30)
    narrow = step.run(frame, model="mock", max_concurrency=1)
    chunked = pl.concat(
        [step.run(frame[:7], model="mock"), step.run(frame[7:], model="mock", max_concurrency=3)]
    )
    assert (
        wide["mutations"].to_list()
        == narrow["mutations"].to_list()
        == chunked["mutations"].to_list()
    )
    reversed_ = step.run(frame.reverse(), model="mock")
    assert reversed_["mutations"].to_list() == wide["mutations"].to_list()[::-1]


def test_output_columns_follow_the_reference():
    assert evol_instruct.step().contract.adds[:1] == ("evolved_instruction",)
    plural = evol_instruct.step(store_evolutions=True, generate_answers=True).contract.adds
    assert plural[:2] == ("evolved_instructions", "answers")
    out = evol_instruct.step(
        num_evolutions=2,
        store_evolutions=True,
        include_original_instruction=True,
        generate_answers=True,
    ).run(pl.DataFrame({"instruction": ["Sort a list."]}), model="mock")
    (row,) = out.to_dicts()
    assert row["evolved_instructions"][0] == "Sort a list."
    assert len(row["answers"]) == len(row["evolved_instructions"]) and all(row["answers"])
    assert out.schema["evolved_instructions"] == pl.List(pl.String)


@pytest.mark.parametrize(
    ("evolved", "answer", "rule"),
    [
        ("Explain #Rewritten Prompt# tides.", "fine", "copied_rewriting_prompt"),
        ("Rewrite the given prompt about tides.", "fine", "copied_rewriting_prompt"),
        ("Explain tides.", "Sorry, I can't.", "answer_is_apology"),
        ("Explain tides.", "Sorry " + "word " * 80, None),
        ("Explain tides.", "... and the, of it!", "answer_is_empty"),
        ("Explain tides.", "The moon pulls the sea.", None),
    ],
)
def test_elimination_rules(evolved, answer, rule):
    assert elimination_rule(evolved, answer) == rule


def test_equality_parser():
    assert parse_equality("Equal").equal and not parse_equality("  not EQUAL.").equal
    with pytest.raises(ParseError):
        parse_equality("maybe")


def test_single_rewrite_returns_evolved_instruction():
    result = evol_instruct("Sort a list.", model="mock")
    assert isinstance(result, EvolvedInstruction) and result.evolved_instruction
    assert len(result.mutations) == 1 and result.eliminations == [None]
