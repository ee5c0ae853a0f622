"""The pairwise judge: its prompt, its parser, and the reconciling of both orders.

Inputs come from strategies written here, never from the parser. The parser's contract
for a round trip: a reason is stripped text whose lines start with a plain word and a
comma (so no line of it reads as a verdict or reason label).
"""

import time

import polars as pl
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from promptflow_dsl import ParseError, Preference, pairwise_preference
from promptflow_dsl.techniques.pairwise_preference import (
    format_preference,
    parse_preference,
    reconcile,
)

line_chars = st.characters(
    exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="\x85\x1c\x1d\x1e"
)
line = st.builds(
    "{}, {}".format,
    st.sampled_from(["the", "it", "clear", "mostly", "but", "and", "very", "some"]),
    st.text(line_chars, max_size=40),
)
reason = st.lists(line, max_size=3).map(lambda lines: "\n".join(lines).strip())
verdicts = st.sampled_from(["a", "b", "tie"])
preferences = st.builds(Preference, preferred=verdicts, reason=reason)

label = st.sampled_from(["", "Preferred: ", "**Winner:** ", "Final verdict: ", "Verdict = "])
value = st.sampled_from(
    ["A", "B", "a", "tie", "[[A]]", "[[C]]", "Response B", "Output (a)", "C", "maybe"]
)
tail = st.sampled_from(
    ["", "\nReason: clearer.", " - it cites a source", ". B is wrong."]
) | st.text(max_size=20)
judge_like = st.tuples(label, value, tail).map("".join)
replies = judge_like | st.text()


def test_prompt_labels_the_responses_in_order():
    (message,) = pairwise_preference.render("Explain tides.", " The moon. ", "Gravity.")
    content = message["content"]
    assert "# Response A\nThe moon.\n\n# Response B\nGravity." in content
    assert "Preferred: <A, B or tie>" in content


@given(preferences)
def test_round_trip(result):
    text = format_preference(result)
    note(text)
    assert parse_preference(text) == result


@given(replies)
def test_arbitrary_text_parses_or_raises_parse_error(text):
    try:
        result = parse_preference(text)
    except ParseError as exc:
        assert exc.raw_text == text
    else:
        assert result.preferred in ("a", "b", "tie")


@given(replies)
def test_a_normalised_reply_reads_the_same_verdict(text):
    try:
        result = parse_preference(text)
    except ParseError:
        return
    assert parse_preference(format_preference(result)).preferred == result.preferred


PHRASINGS = [
    ("Preferred: A\nReason: it is correct.", "a", "it is correct."),
    (
        "**Preferred:** Response B\n**Reason:** A misreads the question.",
        "b",
        "A misreads the question.",
    ),
    ("Winner: Response (b) - more accurate", "b", "more accurate"),
    ("Final verdict: tie", "tie", ""),
    ("[[A]]", "a", ""),
    ("[[C]]", "tie", ""),
    ("A misreads the question, so my verdict is: [[B]]", "b", "A misreads the question"),
    ("B", "b", ""),
    (
        "**A**\n\nIt answers the question that was asked.",
        "a",
        "It answers the question that was asked.",
    ),
    ("Tie.", "tie", ""),
    ('{"preferred": "B", "reason": "cites sources"}', "b", "cites sources"),
    ('```json\n{"winner": "tie", "explanation": "both correct"}\n```', "tie", "both correct"),
    ("Response B is better because it is accurate.", "b", None),
    ("I prefer Output (a); it is shorter and right.", "a", None),
    ("It's a tie: both are correct.", "tie", None),
    ("Both responses are equally good.", "tie", None),
    ("Reason: B handles the edge case.\nPreferred: B", "b", "B handles the edge case."),
    ("Preferred: A and B are equal", "tie", ""),
    ("Choice: a", "a", ""),
    (
        "Preferred: B (both are correct, but B is clearer)",
        "b",
        "(both are correct, but B is clearer)",
    ),
]


@pytest.mark.parametrize("text, preferred, reason", PHRASINGS)
def test_real_world_phrasings(text, preferred, reason):
    result = parse_preference(text)
    assert result.preferred == preferred
    if reason is not None:
        assert result.reason == reason


REJECTED = [
    "",
    "hello",
    "Both have merits.",
    "Preferred: maybe",
    "Response A is better in style, but Response B is better in substance.",
    "[[A]] ... on reflection, [[B]]",
    '{"preferred": "the first one"}',
    "Preferred: A\nVerdict: B",
]


@pytest.mark.parametrize("text", REJECTED)
def test_no_verdict_or_two_verdicts_raise(text):
    with pytest.raises(ParseError) as caught:
        parse_preference(text)
    assert caught.value.raw_text == text


@pytest.mark.parametrize(
    "first, swapped, expected",
    [
        ("a", "b", "a"),  # A both times: the swapped asking calls it "B"
        ("b", "a", "b"),
        ("tie", "tie", "tie"),
        ("a", "a", "tie"),  # the first position both times: position bias, not a verdict
        ("b", "b", "tie"),
        ("a", "tie", "tie"),
    ],
)
def test_reconcile_keeps_agreement_and_makes_disagreement_a_tie(first, swapped, expected):
    result = reconcile(
        Preference(preferred=first, reason="one."), Preference(preferred=swapped, reason="two.")
    )
    assert result.preferred == expected
    assert "one." in result.reason and "two." in result.reason


def test_both_orders_asks_twice_with_the_responses_swapped():
    sequence = pairwise_preference.sequence("Q?", "first", "second", both_orders=True)
    program = next(sequence)
    assert "# Response A\nfirst\n\n# Response B\nsecond" in program.text()
    program = sequence.send(Preference(preferred="a", reason="first is right."))
    assert "# Response A\nsecond\n\n# Response B\nfirst" in program.text()
    with pytest.raises(StopIteration) as stop:
        sequence.send(Preference(preferred="b", reason="B is right."))
    assert stop.value.value.preferred == "a"


def test_one_order_asks_once():
    sequence = pairwise_preference.sequence("Q?", "first", "second")
    next(sequence)
    with pytest.raises(StopIteration) as stop:
        sequence.send(Preference(preferred="b", reason="x"))
    assert stop.value.value == Preference(preferred="b", reason="x")


def test_the_offline_model_gives_a_verdict_in_a_recipe():
    frame = pl.DataFrame(
        {"instruction": ["Q?", "R?"], "response_a": ["x", "y"], "response_b": ["z", "w"]}
    )
    out = pairwise_preference.step(both_orders=True).run(frame, model="mock")
    assert set(out["preferred"].to_list()) <= {"a", "b", "tie"}
    assert out["reason"].is_not_null().all() and out["error"].is_null().all()


HOSTILE = [
    "1" * 20_000 + "x",
    " " * 20_000 + "x",
    "*" * 20_000,
    "Rating" + "*" * 20_000 + "x",
    "\n" * 20_000 + "Rating: x",
    "1 " * 10_000 + "x",
    "(a" * 10_000,
    "Preferred: " * 2_000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_a_long_hostile_reply_is_read_in_about_linear_time(text):
    started = time.perf_counter()
    try:
        parse_preference(text)
    except ParseError:
        pass
    assert time.perf_counter() - started < 2  # backtracking would take minutes
