"""Properties of the self_instruct text parser."""

import re

import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

from promptflow_dsl import InstructionList, ParseError, self_instruct
from promptflow_dsl.techniques.self_instruct import format_instructions, parse_instructions

STYLES = [
    lambda i: f"{i}. ",
    lambda i: f"{i}) ",
    lambda i: f"{i} - ",
    lambda i: f"({i}) ",
    lambda i: "- ",
    lambda i: "* ",
    lambda i: "• ",
    lambda i: "",
]

line_text = (
    st.text(
        st.characters(
            blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x85\x1c\x1d\x1e"
        ),
        min_size=1,
        max_size=60,
    )
    .map(str.strip)
    .filter(bool)
)


def clean(item: str) -> bool:
    """Out of contract: items that themselves read as a marker or carry one."""
    try:
        return parse_instructions(item).instructions == [item]
    except ParseError:
        return False


@given(
    st.lists(line_text, min_size=1, max_size=12, unique=True),
    st.sampled_from(STYLES),
    st.sampled_from(["\n", "\n\n", "\r\n", "\n  \n"]),
)
def test_round_trip_any_numbering_or_bullet_style(items, style, separator):
    assume(all(clean(item) for item in items))
    text = separator.join(style(i) + item for i, item in enumerate(items, 1))
    note(repr(text))
    assert parse_instructions(text).instructions == items


@given(st.text())
def test_arbitrary_text_parses_or_raises_only_parse_error(text):
    try:
        result = parse_instructions(text)
    except ParseError as exc:
        assert exc.raw_text == text
    else:
        assert result.instructions and all(
            item == item.strip() and item for item in result.instructions
        )
        assert len(set(result.instructions)) == len(result.instructions)


@given(st.text())
def test_parsing_is_idempotent(text):
    try:
        once = parse_instructions(text)
    except ParseError:
        return
    assert parse_instructions(format_instructions(once)) == once
    assert parse_instructions("\n".join(once.instructions)) == once


def test_realistic_replies():
    reply = (
        "Here are your queries:\n\n1. Explain how tides form.\n2) Compare neap and spring tides."
        "\n\n3 - List three effects of the moon.\n- Explain how tides form.\n"
    )
    assert self_instruct.parse(reply) == InstructionList(
        instructions=[
            "Here are your queries:",
            "Explain how tides form.",
            "Compare neap and spring tides.",
            "List three effects of the moon.",
        ]
    )


def test_numbers_that_belong_to_the_text_are_kept():
    assert parse_instructions("2024 was a leap year: explain why.").instructions == [
        "2024 was a leap year: explain why."
    ]
    assert parse_instructions("3D printing: describe it.").instructions == [
        "3D printing: describe it."
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "1.\n2.\n-", "   "])
def test_blank_or_marker_only_replies_raise(text):
    with pytest.raises(ParseError, match="no instruction"):
        parse_instructions(text)


def test_marker_regex_only_strips_one_marker():
    assert re.sub(r"\s", "", parse_instructions("1. - nested").instructions[0]) == "-nested"
