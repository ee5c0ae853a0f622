"""Properties of the self_instruct text parser.

Inputs come from the types and from alphabets and regexes written here, never from the
parser: an instruction starts with a letter and holds no line break; a list marker is a
number (``1.``, ``2)``, ``(3)``, ``4 -``, ``5:``) or a bullet (``-``, ``*``, ``•``, ``+``).
"""

import re

import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st

from promptflow_dsl import InstructionList, ParseError, self_instruct
from promptflow_dsl.techniques.self_instruct import format_instructions, parse_instructions

# Characters of one line: no line or paragraph separator of str.splitlines().
line_chars = st.characters(
    exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="\x85\x1c\x1d\x1e"
)
instruction = st.builds(
    lambda first, rest: (first + rest).rstrip(),
    st.characters(categories=("L",)),
    st.text(line_chars, max_size=60),
)
instruction_lists = st.builds(
    InstructionList, instructions=st.lists(instruction, min_size=1, max_size=12, unique=True)
)
marker = st.from_regex(r"\(?[0-9]{1,3} ?[.):-]|[-*•+]", fullmatch=True)
markers = st.lists(
    st.tuples(marker, st.sampled_from([" ", "  ", "\t"])).map("".join), max_size=3
).map("".join)
separators = st.sampled_from(["\n", "\n\n", "\r\n", "\n  \n"])
# Replies shaped like lists (markers, nested markers, bare markers, free text), so the
# properties below see the parser's interesting cases and not only random noise.
list_like = st.lists(
    st.tuples(st.sampled_from(["", " ", "\t"]), markers, st.text(line_chars, max_size=20)).map(
        "".join
    ),
    max_size=8,
).map("\n".join)
replies = list_like | st.text()

MARKER_AT_START = re.compile(r"(?:\(?\d{1,3}\s*[.):\-]|[-*•+])(?:\s|$)")


@given(instruction_lists)
def test_round_trip(result):
    assert parse_instructions(format_instructions(result)) == result


@given(st.lists(st.tuples(markers, instruction), min_size=1, max_size=12), separators)
def test_any_markers_before_an_instruction_are_removed(lines, separator):
    items = list(dict.fromkeys(item for _, item in lines))
    text = separator.join(prefix + item for prefix, item in lines)
    note(repr(text))
    assert parse_instructions(text).instructions == items


@given(replies)
def test_arbitrary_text_parses_or_raises_only_parse_error(text):
    try:
        result = parse_instructions(text)
    except ParseError as exc:
        assert exc.raw_text == text
        return
    items = result.instructions
    assert items and len(set(items)) == len(items)
    for item in items:
        assert item == item.strip() and item.splitlines() == [item]
        assert not MARKER_AT_START.match(item), item


@given(replies)
@example("- - Explain tides.")
@example("1. - Explain tides.\n2) * (3) Why is the sky blue?")
def test_parsing_is_idempotent(text):
    try:
        once = parse_instructions(text)
    except ParseError:
        return
    note(repr(once))
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
    assert parse_instructions("- 10 tips for sleeping well.").instructions == [
        "10 tips for sleeping well."
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "1.\n2.\n-", "   ", "- -\n1. *"])
def test_blank_or_marker_only_replies_raise(text):
    with pytest.raises(ParseError, match="no instruction"):
        parse_instructions(text)


@pytest.mark.parametrize(
    "line",
    ["- - Explain tides.", "1. - Explain tides.", "* 1) Explain tides.", "(2) • Explain tides."],
)
def test_nested_markers_are_all_removed(line):
    assert parse_instructions(line).instructions == ["Explain tides."]
