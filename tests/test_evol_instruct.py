import re

import polars as pl
import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st

from promptflow_dsl import EvolvedInstruction, Model, ParseError, evol_instruct
from promptflow_dsl.techniques.evol_instruct import (
    MUTATION_TEMPLATES,
    EqualityVerdict,
    choose_mutation,
    elimination_rule,
    parse_equality,
    parse_rewrite,
)
from promptflow_dsl.testing import LoopbackServer

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

# A rewritten prompt as models write one: it opens with an ordinary word (never a label),
# then anything, line breaks included.
OPENING_WORDS = [
    "Sort", "Explain", "Write", "Why", "How", "List", "Compare", "Describe", "3D",
    "New prompts", "Given prompt injection", "Rewritten instructions", "Here is a prompt",
]  # fmt: skip
body = st.builds(
    lambda word, rest: (word + rest).rstrip(), st.sampled_from(OPENING_WORDS), st.text()
)


@given(body, st.sampled_from(HEADERS))
def test_round_trip_through_echoed_headers(text, header):
    note(repr(header + text))
    assert parse_rewrite(header + text).rewritten_prompt == text


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("New prompts are rare. Name three.", "New prompts are rare. Name three."),
        (
            "Given prompt injection, explain the risks.",
            "Given prompt injection, explain the risks.",
        ),
        ("Here is a prompt: sort it.", "Here is a prompt: sort it."),
        (
            "Rewritten instructions should be short: say why.",
            "Rewritten instructions should be short: say why.",
        ),
        ("#Rewritten Prompt#:\nSort it.", "Sort it."),
        ("**New Prompt**\nSort it.", "Sort it."),
        ("Here is the rewritten prompt:\nSort it.", "Sort it."),
        ("Here's my new instruction, harder: Sort it.", "Sort it."),
    ],
)
def test_a_label_is_cut_and_words_that_only_look_like_one_are_kept(reply, expected):
    assert parse_rewrite(reply).rewritten_prompt == expected


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


SAID_EQUAL = [
    "Equal",
    "equal",
    "EQUAL",
    "**Equal**",
    "Equal.",
    '"Equal"',
    "`Equal`",
    "# Equal",
    "Answer: Equal",
    "**Answer:** Equal",
    "Verdict - Equal!",
    "Equal - both ask for the same sort with the same limits.",
    "Equal\n\nBoth instructions ask for the same thing; neither is unequal in depth.",
    "Equal. The second is not harder than the first.",
    "They are equal.",
    "The two instructions are equal in every respect.",
    "Yes",
    "yes.",
    "Yes, they are equal.",
    "Answer: Yes",
    "**Verdict**\n\nYes",
    "Equal? Yes.",
    "Are they equal? Yes, they are.",
    "No new constraint was added, so they are equal.",
    "There is no difference; they are equal.",
]

SAID_NOT_EQUAL = [
    "Not Equal",
    "not equal",
    "NOT EQUAL",
    "Not  Equal",
    "Not\nEqual",
    "\tnot \t EQUAL.",
    "not-equal",
    "Not-Equal.",
    "**Not Equal**",
    "**Not** Equal",
    '"Not Equal"',
    "Answer: Not Equal",
    "**Answer:** Not Equal",
    "Verdict: NOT EQUAL (the second asks for reasoning in steps)",
    "Unequal",
    "unequal.",
    "Inequal",
    "Non-equal",
    "Un-equal",
    "Equal? No.",
    "Equal? No, the second adds a constraint.",
    "Are they equal? They are not equal.",
    "No",
    "No.",
    "**Answer**\n\nNo",
    "No, they are not equal.",
    "No. They are equal in length, but the second is deeper.",
    "They are not equal.",
    "They aren't equal.",
    "They are not really equal: the second adds a time limit.",
    "The instructions are not quite equal.",
    "Not equal - the second adds a time limit.",
    "Not Equal\n\nThe first is equal in length, but the second adds a constraint.",
    "Not equal. The two are equal in length only.",
]

AMBIGUOUS = [
    "",
    "   ",
    "maybe",
    "I am not sure.",
    "Equal or Not Equal",
    "Equal / Not Equal",
    'Answer with "Equal" or "Not Equal".',
    "The first is equal in length but not equal in depth.",
    "Not unequal.",
    "Yes, they are not equal.",
    "No, they are equal.",
    "I do not think that they are equal.",
    "Are they equal?",
    "Equal? Perhaps.",
    "Is the second harder? Yes.",
    "The second adds a constraint. No.",
    "Equally hard.",
    "They differ.",
]


@pytest.mark.parametrize("text", SAID_EQUAL)
def test_equality_verdicts_that_say_equal(text):
    assert parse_equality(text) == EqualityVerdict(equal=True)


@pytest.mark.parametrize("text", SAID_NOT_EQUAL)
def test_equality_verdicts_that_say_not_equal(text):
    assert parse_equality(text) == EqualityVerdict(equal=False)


@pytest.mark.parametrize("text", AMBIGUOUS)
def test_an_ambiguous_verdict_is_a_parse_error_with_the_raw_text(text):
    with pytest.raises(ParseError) as caught:
        parse_equality(text)
    assert caught.value.raw_text == text


LABELS = ["", "Answer: ", "**Verdict:** ", "> ", "They are ", "The two instructions are "]
NEGATIONS = ["not", "Not", "NOT", "isn't", "aren't", "never", "non-", "un-"]
FILLERS = ["really", "quite", "exactly", "fully", "truly", "strictly", "**"]
# What may follow a verdict: a sentence break, then anything at all.
tails = st.tuples(
    st.sampled_from(["", "**", '"']), st.sampled_from([".", "!", ";", "\n\n", ""]), st.text()
).map(lambda t: "".join(t) if t[1] else t[0])


def verdict_text(label: str, negation: str | None, fillers: list[str], tail: str) -> str:
    words = [*([negation] if negation else []), *fillers, "equal"]
    return label + " ".join(words) + tail


@given(
    st.sampled_from(LABELS),
    st.sampled_from(NEGATIONS),
    st.lists(st.sampled_from(FILLERS), max_size=2),
    tails,
)
def test_a_negation_before_equal_always_reads_not_equal(label, negation, fillers, tail):
    text = verdict_text(label, negation, fillers, tail)
    note(repr(text))
    assert parse_equality(text) == EqualityVerdict(equal=False)


@given(st.sampled_from(LABELS), st.lists(st.sampled_from(FILLERS), max_size=2), tails)
def test_equal_without_a_negation_reads_equal(label, fillers, tail):
    text = verdict_text(label, None, fillers, tail)
    note(repr(text))
    assert parse_equality(text) == EqualityVerdict(equal=True)


# Replies built from the words a verdict is made of, glued with arbitrary text, so the
# properties below reach every branch of the parser and not only "no verdict".
VERDICT_PIECES = [
    "equal", "Equal", "not", "Not", "un", "in", "non", "-", "yes", "No", "never", "isn't",
    "?", ".", ",", ":", ";", "!", " ", "  ", "\t", "\n", "\n\n", "**", "answer", "they are",
]  # fmt: skip
replies = (
    st.lists(st.sampled_from(VERDICT_PIECES) | st.text(max_size=4), max_size=14).map("".join)
    | st.text()
)


def outcome(text: str) -> bool | str:
    try:
        return parse_equality(text).equal
    except ParseError as exc:
        assert exc.raw_text == text
        return "ParseError"


@given(replies)
def test_any_reply_gives_a_verdict_or_a_parse_error(text):
    outcome(text)  # anything else than ParseError propagates and fails


@given(replies, st.sampled_from([" ", "  ", "\t", " \t "]))
@example("ınequal", " ")  # dotless i: "INEQUAL" in upper case
def test_a_verdict_does_not_depend_on_case_or_spacing(text, spacing):
    read = outcome(text)
    note(f"{text!r} reads {read!r}")
    assert outcome(text.upper()) == read
    assert outcome(text.lower()) == read
    assert outcome(text.swapcase()) == read
    assert outcome(re.sub(r"[ \t]+", spacing, text)) == read
    assert outcome(f"{spacing}{text}{spacing}") == read


def test_single_rewrite_returns_evolved_instruction():
    result = evol_instruct("Sort a list.", model="mock")
    assert isinstance(result, EvolvedInstruction) and result.evolved_instruction
    assert len(result.mutations) == 1 and result.eliminations == [None]


@pytest.mark.parametrize(
    ("verdict", "kept"),
    [
        ("Unequal", True),
        ("Not\nEqual", True),
        ("Equal? No.", True),
        ("**Not Equal**", True),
        ("Equal", False),
        ("Answer: **Equal**", False),
        ("Equal? Yes.", False),
    ],
)
def test_elimination_keeps_a_rewrite_the_judge_calls_unequal(verdict, kept):
    evolved = "Sort a list of 10 numbers in place."
    replies = iter([evolved, verdict, "Use insertion sort: take each number in turn."])
    with LoopbackServer(responder=lambda request: next(replies)) as server:
        model = Model("openai/judge", api_base=server.api_base, api_key="sk-test")
        result = evol_instruct("Sort a list.", eliminate=True, model=model, cache=False)
        judged = server.requests[1].text
    assert "Second instruction:\nSort a list of 10 numbers in place." in judged
    assert result.evolved_instruction == (evolved if kept else "Sort a list.")
    assert result.eliminations == [None if kept else "no_information_gain"]


def test_elimination_with_an_ambiguous_verdict_is_a_row_error_not_a_guess(loopback_server):
    loopback_server.script(["Sort a list of 10 numbers in place.", "Equal or Not Equal"])
    model = Model("openai/judge", api_base=loopback_server.api_base, api_key="sk-test")
    out = evol_instruct.step(eliminate=True).run(
        pl.DataFrame({"instruction": ["Sort a list."]}), model=model, cache=False
    )
    (error,) = out["error"].to_list()
    assert error["type"] == "ParseError" and error["raw_reply"] == "Equal or Not Equal"
    assert out["evolved_instruction"].to_list() == [None]
