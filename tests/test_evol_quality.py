import polars as pl
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from promptflow_dsl import (
    AttributeValueError,
    EvolvedResponse,
    MissingColumnError,
    Model,
    ParseError,
    evol_quality,
)
from promptflow_dsl.techniques._evolution import choose_mutation
from promptflow_dsl.techniques.evol_quality import (
    MUTATION_TEMPLATES,
    ResponseRewrite,
    format_evolved_response,
    parse_evolved_response,
    parse_response_rewrite,
    response_elimination_rule,
)

FIVE = {"helpfulness", "relevance", "depth", "creativity", "details"}

# A response as models write one: it opens with an ordinary word or mark (never a label),
# then anything, line breaks included.
OPENING = ["Tides", "Because", "Yes", "Sort", "In", "First", "1.", "3D", "|", "`x`", "- a"]
responses = st.builds(lambda word, rest: (word + rest).strip(), st.sampled_from(OPENING), st.text())
HEADERS = [
    "",
    "#Rewritten Response#:\n",
    "Rewritten Response: ",
    "**Rewritten response:**\n",
    "## Improved answer\n\n",
    "The revised response:\n",
    "Here is the improved response:\n",
    "Here's my rewritten answer, with more detail: ",
    "**Here is the enhanced version of the response:**\n\n",
]


def run(instruction, response, replies, **attributes):
    """What a run sends, each program answered with the next reply, and its result."""
    sequence = evol_quality.sequence(instruction, response, **attributes)
    sent = [next(sequence)]
    for reply in replies:
        try:
            sent.append(sequence.send(sent[-1].parse(reply)))
        except StopIteration as done:
            return [p.render()[0]["content"] for p in sent], done.value
    message = "the run asked for more replies than the test gave"
    raise AssertionError(message)


def test_five_mutations_fill_the_prompt_and_the_response_and_limit_growth():
    assert set(MUTATION_TEMPLATES) == FIVE
    for template in MUTATION_TEMPLATES.values():
        assert template.count("{instruction}") == template.count("{response}") == 1
        assert "20 words" in template and "tables or code" in template


def test_the_prompt_is_filled_in_one_pass():
    (message,) = evol_quality.render("Why {response}?", "The {instruction} moon.")
    assert (
        "Given prompt:\nWhy {response}?\n\nGiven response:\nThe {instruction} moon."
        in (message["content"])
    )


@given(responses, st.sampled_from(HEADERS))
def test_round_trip_through_echoed_labels(response, header):
    note(repr(header + response))
    assert parse_response_rewrite(header + response) == ResponseRewrite(rewritten_response=response)


@given(responses)
def test_format_and_parse_are_inverses(response):
    result = EvolvedResponse(evolved_response=response)
    assert parse_evolved_response(format_evolved_response(result)) == result
    assert evol_quality.parse(evol_quality.format(result)) == result


# Replies glued from the pieces labels are made of and arbitrary text, so the properties
# below reach every branch of the label stripping, not only plain text.
LABEL_PIECES = [
    "Rewritten", "improved", "NEW", "given", "the ", "My ", "Here is ", "Here's ", "Here’s ",
    "response", "Answer", "version of the ", ":", "**", "#", ">", "_", " ", "  ", "\t", "\n",
    "\n\n", "\x0b", "\u2028", "s", ".",
]  # fmt: skip
replies = (
    st.lists(st.sampled_from(LABEL_PIECES) | st.text(max_size=4), max_size=14).map("".join)
    | st.text()
)


@given(replies)
def test_any_text_parses_or_raises_parse_error_and_is_idempotent(text):
    try:
        once = parse_response_rewrite(text).rewritten_response
    except ParseError as exc:
        assert exc.raw_text == text
        return
    assert once and once == once.strip()
    assert parse_response_rewrite(once).rewritten_response == once


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The moon pulls the sea.", "The moon pulls the sea."),
        ("  The moon pulls the sea.\n\n", "The moon pulls the sea."),
        ("#Rewritten Response#:\nThe moon.", "The moon."),
        ("**Rewritten Response:** The moon.", "The moon."),
        ("> **Improved answer**\n> The moon.", "> The moon."),
        ("Rewritten response\n\nThe moon.", "The moon."),
        ("Given response: The moon.", "The moon."),
        ("Here’s the improved response: The moon.", "The moon."),
        # what only looks like a label keeps its words
        ("New answers come from the moon.", "New answers come from the moon."),
        ("Here is the answer: 42.", "Here is the answer: 42."),
        ("Better answers need: data.", "Better answers need: data."),
        ("Improved responses - faster.", "Improved responses - faster."),
        ("The answer: 42.", "The answer: 42."),
    ],
)
def test_real_world_replies(text, expected):
    assert parse_response_rewrite(text).rewritten_response == expected


@pytest.mark.parametrize(
    "text",
    ["", "  \n", "#Rewritten Response#:", "**Improved answer:**\n\n", "Here is the new answer:"],
)
def test_an_empty_reply_or_a_bare_label_is_a_parse_error(text):
    with pytest.raises(ParseError) as caught:
        parse_response_rewrite(text)
    assert caught.value.raw_text == text


@pytest.mark.parametrize(
    ("evolved", "previous", "rule"),
    [
        ("The moon pulls the sea, twice a day.", "The moon pulls the sea.", None),
        ("As the given response says, the moon.", "The moon.", "copied_rewriting_prompt"),
        ("The Rewritten Response: the moon.", "The moon.", "copied_rewriting_prompt"),
        ("The given prompt asks X; so X.", "The given prompt asks X.", None),
        ("the moon  pulls\nthe SEA.", "The moon pulls the sea.", "unchanged"),
        ("... and the, of it!", "The moon pulls the sea.", "response_is_empty"),
        ("Sorry, I cannot improve this.", "The moon pulls the sea.", "response_is_apology"),
        ("Sorry for the delay: here it is.", "Sorry for the delay.", None),
    ],
)
def test_elimination_rules(evolved, previous, rule):
    assert response_elimination_rule(evolved, previous) == rule


@given(st.text(), st.text(), st.integers(0, 2**32), st.integers(1, 5))
def test_the_same_seed_and_row_give_the_same_mutations(instruction, response, seed, rounds):
    replies = ["The moon pulls the sea."] * rounds
    first = run(instruction, response, replies, num_evolutions=rounds, seed=seed)[1].mutations
    again = run(instruction, response, replies, num_evolutions=rounds, seed=seed)[1].mutations
    note(repr(first))
    assert first == again and len(first) == rounds and set(first) <= FIVE
    assert first == [
        choose_mutation(
            MUTATION_TEMPLATES, seed=seed, instruction=instruction, response=response, round=r
        )
        for r in range(rounds)
    ]


def test_the_choice_depends_on_the_response_too_and_varies():
    picks = {
        choose_mutation(
            MUTATION_TEMPLATES, seed=3, instruction="Why tides?", response=f"Reply {i}", round=0
        )
        for i in range(40)
    }
    assert picks == FIVE


def test_the_row_position_does_not_change_the_mutations():
    frame = pl.DataFrame(
        {
            "instruction": [f"Why does thing {i} happen?" for i in range(20)],
            "response": [f"Because of cause {i}." for i in range(20)],
        }
    )
    step = evol_quality.step(num_evolutions=3, seed=4)
    forward = step.run(frame, model="mock", max_concurrency=20)["mutations"].to_list()
    backward = step.run(frame.reverse(), model="mock", max_concurrency=1)["mutations"]
    chunked = pl.concat([step.run(frame[:6], model="mock"), step.run(frame[6:], model="mock")])
    assert backward.to_list() == forward[::-1]
    assert chunked["mutations"].to_list() == forward


def test_elimination_keeps_the_previous_response_and_rewrites_it_again():
    replies = [
        "The moon  pulls the sea.",  # round 1: unchanged
        "Sorry, I can't do that.",  # round 2: an apology
        "The moon's pull raises two bulges of sea, so tides come twice a day.",
    ]
    prompts, result = run(
        "Why tides?",
        "The moon pulls the sea.",
        replies,
        num_evolutions=3,
        eliminate=True,
        store_evolutions=True,
        include_original_response=True,
    )
    assert result.eliminations == ["unchanged", "response_is_apology", None]
    assert result.evolved_responses == ["The moon pulls the sea.", replies[2]]
    assert result.evolved_response == replies[2]
    assert all(p.endswith("Given response:\nThe moon pulls the sea.") for p in prompts)


def test_without_elimination_every_rewrite_is_kept():
    replies = ["The moon pulls the sea.", "Sorry."]
    _, result = run(
        "Why tides?", "The moon pulls the sea.", replies, num_evolutions=2, store_evolutions=True
    )
    assert result.eliminations == [None, None] and result.evolved_responses == replies


def test_output_columns_follow_the_attributes():
    assert evol_quality.step().contract.adds[:3] == (
        "evolved_response",
        "mutations",
        "eliminations",
    )
    step = evol_quality.step(
        num_evolutions=2, store_evolutions=True, include_original_response=True
    )
    assert step.contract.adds[0] == "evolved_responses"
    frame = pl.DataFrame({"instruction": ["Why tides?"], "response": ["The moon."]})
    out = step.run(frame, model="mock")
    assert out.schema["evolved_responses"] == pl.List(pl.String)
    assert out.schema["mutations"] == pl.List(pl.String)
    (row,) = out.to_dicts()
    assert row["evolved_responses"][0] == "The moon." and len(row["evolved_responses"]) == 3


def test_a_step_needs_both_columns():
    with pytest.raises(MissingColumnError, match="response"):
        evol_quality.step().run(pl.DataFrame({"instruction": ["Why tides?"]}), model="mock")


def test_a_bad_attribute_fails_when_the_step_is_built():
    with pytest.raises(AttributeValueError, match="num_evolutions"):
        evol_quality.step(num_evolutions=0)


def test_an_unparseable_rewrite_is_a_row_error_with_the_raw_reply(loopback_server):
    loopback_server.script(["#Rewritten Response#:\n\n"])
    model = Model("openai/rewriter", api_base=loopback_server.api_base, api_key="sk-test")
    frame = pl.DataFrame({"instruction": ["Why tides?"], "response": ["The moon."]})
    out = evol_quality.step().run(frame, model=model, cache=False)
    (error,) = out["error"].to_list()
    assert error["type"] == "ParseError" and error["raw_reply"] == "#Rewritten Response#:\n\n"
    assert out["evolved_response"].to_list() == [None]


def test_a_direct_call_over_http(loopback_server):
    loopback_server.script(["Rewritten response: The moon's pull raises the sea."])
    model = Model("openai/rewriter", api_base=loopback_server.api_base, api_key="sk-test")
    result = evol_quality("Why tides?", "The moon.", model=model, cache=False)
    assert result.evolved_response == "The moon's pull raises the sea."
    (request,) = loopback_server.requests
    assert "Given prompt:\nWhy tides?\n\nGiven response:\nThe moon." in request.text
