"""The ultrafeedback judge: its prompt, its result type and its text parser.

Inputs come from strategies written here, never from the parser. The parser's contract
for a round trip: ratings from 1 to 5; a rationale is stripped text whose lines start with
a plain word and a comma (so no line of it reads as an item header or a rating label).
"""

import time

import polars as pl
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from pydantic import ValidationError

from promptflow_dsl import AttributeValueError, InputError, ParseError, Ratings, ultrafeedback
from promptflow_dsl.techniques.ultrafeedback import ASPECTS, format_ratings, parse_ratings

line_chars = st.characters(
    exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="\x85\x1c\x1d\x1e"
)
line = st.builds(
    "{}, {}".format,
    st.sampled_from(["the", "it", "clear", "mostly", "but", "and", "very", "some"]),
    st.text(line_chars, max_size=40),
)
rationale = st.lists(line, max_size=3).map(lambda lines: "\n".join(lines).strip())
rating = st.floats(min_value=1, max_value=5) | st.integers(1, 5).map(float)
results = st.integers(1, 6).flatmap(
    lambda n: st.builds(
        Ratings,
        ratings=st.lists(rating, min_size=n, max_size=n),
        rationales=st.lists(rationale, min_size=n, max_size=n),
    )
)

# Replies shaped like a judge's (headers, labels, numbers in and out of range, prose), so
# the properties see the parser's interesting cases and not only random noise.
header = st.sampled_from(
    ["", "Response {n}\n", "Output #{n}: ", "{n}. ", "### Text {n}\n", "[{n}] "]
)
label = st.sampled_from(
    ["", "Rating: ", "Score: ", "**Rating:** ", "I'd rate it ", "Rating (1-5): "]
)
number = st.integers(-2, 12).map(str) | st.floats(0, 11).map("{:.1f}".format)
suffix = st.sampled_from(["", "/5", "/10", " out of 5", "**", "."])
tail = st.sampled_from(["", "\nRationale: clear.", " - good", "\nReason: it is wrong"]) | st.text(
    max_size=20
)
item = st.tuples(header, label, number, suffix, tail)
judge_like = st.lists(item, min_size=1, max_size=4).map(
    lambda items: "\n".join(h.format(n=i) + "".join(rest) for i, (h, *rest) in enumerate(items, 1))
)
replies = judge_like | st.text()


def test_prompt_numbers_every_generation_and_states_the_rubric():
    (message,) = ultrafeedback.render("Name a prime.", ["2", " 9 "], aspect="honesty")
    content = message["content"]
    assert message["role"] == "user"
    assert "## Response 1\n2\n\n## Response 2\n9" in content
    assert ASPECTS["honesty"] in content and "Name a prime." in content
    assert "an instruction and 2 responses to it" in content


def test_every_aspect_has_five_levels_and_unknown_aspects_are_refused():
    for rubric in ASPECTS.values():
        assert [line[:2] for line in rubric.splitlines()[-5:]] == ["1:", "2:", "3:", "4:", "5:"]
    with pytest.raises(AttributeValueError):
        ultrafeedback.step(aspect="kindness")


def test_nothing_to_rate_is_an_input_error():
    with pytest.raises(InputError):
        ultrafeedback.program("Name a prime.", [])


def test_the_program_asks_for_and_insists_on_one_rating_per_generation():
    program = ultrafeedback.program("Name a prime.", ["2", "9", "4"])
    schema = program.result_type.model_json_schema()["properties"]
    assert schema["ratings"]["minItems"] == schema["ratings"]["maxItems"] == 3
    assert schema["ratings"]["items"] == {"type": "number", "minimum": 1, "maximum": 5}
    assert schema["rationales"]["minItems"] == 3
    with pytest.raises(ValidationError):  # a structured reply of another count is re-asked
        program.result_type(ratings=[4, 2], rationales=["a", "b"])
    with pytest.raises(ParseError):  # a text reply of another count fails the row
        program.parse("Response 1: 4\nResponse 2: 2")
    three = program.parse("Response 1: 4\nResponse 2: 2\nResponse 3: 5")
    assert three == Ratings(ratings=[4, 2, 5], rationales=["", "", ""])


@pytest.mark.parametrize(
    "ratings, rationales",
    [([0.5], ["x"]), ([5.5], ["x"]), ([4, 3], ["x"]), ([], [])],
)
def test_the_result_type_checks_range_and_counts(ratings, rationales):
    with pytest.raises(ValidationError):
        Ratings(ratings=ratings, rationales=rationales)


@given(results)
def test_round_trip(result):
    text = format_ratings(result)
    note(text)
    assert parse_ratings(text) == result
    assert parse_ratings(text, count=len(result.ratings)) == result


@given(replies)
def test_arbitrary_text_parses_or_raises_parse_error(text):
    for count in (None, 1, 2):
        try:
            result = parse_ratings(text, count=count)
        except ParseError as exc:
            assert exc.raw_text == text
        else:
            assert all(1 <= r <= 5 for r in result.ratings)
            assert count is None or len(result.ratings) == count


@given(replies)
def test_a_normalised_reply_reads_the_same_ratings(text):
    try:
        result = parse_ratings(text)
    except ParseError:
        return
    assert parse_ratings(format_ratings(result)).ratings == result.ratings


# What judges write: (reply, count, ratings, rationales or None when not checked).
PHRASINGS = [
    ("Rating: 4/5", 1, [4], [""]),
    ("4.5", 1, [4.5], [""]),
    ("**4**", 1, [4], [""]),
    ("Score: 4 out of 5", 1, [4], [""]),
    ("4/5 - good", 1, [4], ["good"]),
    (
        "I would rate this response a 3. It is correct but terse.",
        1,
        [3],
        ["It is correct but terse."],
    ),
    ("**Rating:** 5\n**Rationale:** complete and precise.", 1, [5], ["complete and precise."]),
    ("Rating (1-5): 2\nThe answer invents a citation.", 1, [2], ["The answer invents a citation."]),
    ('{"rating": 4, "rationale": "fine"}', 1, [4], ["fine"]),
    ('{"ratings": [4, 2], "rationales": ["ok", "wrong"]}', 2, [4, 2], ["ok", "wrong"]),
    ('[{"rating": 3}, {"rating": "5/5", "rationale": "best"}]', 2, [3, 5], ["", "best"]),
    ('```json\n{"ratings": [1, 2.5]}\n```\nThat is all.', 2, [1, 2.5], ["", ""]),
    ("1. 4 - clear\n2. 2 - misses the point", 2, [4, 2], ["clear", "misses the point"]),
    (
        "Output #1: Rating: 4\nRationale: accurate.\n\nOutput #2: Rating: 1\nRationale: off topic.",
        2,
        [4, 1],
        ["accurate.", "off topic."],
    ),
    (
        "#### Output for Text 1\nRating: 5\nRationale: perfect.\n#### Output for Text 2\n"
        "Rating: 3\nRationale: verbose.",
        2,
        [5, 3],
        ["perfect.", "verbose."],
    ),
    ("Response 1: **3**\nResponse 2: 4/5 - cites its source", 2, [3, 4], ["", "cites its source"]),
    ("Scores: 4, 3, 5", 3, [4, 3, 5], ["", "", ""]),
    ("[Score 1]: 4\n[Score 2]: 5", 2, [4, 5], None),
    (
        "Here are my ratings.\n\nResponse 1\nRating: 2\n\nResponse 2\nRating: 4\n\nOverall, 2 wins.",
        2,
        [2, 4],
        None,
    ),
    ("Rating: 4\nRationale:\n1. Clear\n2. Correct", 1, [4], ["1. Clear\n2. Correct"]),
    ("Rationale: concise and right.\nRating: 5", 1, [5], ["concise and right."]),
]


@pytest.mark.parametrize("text, count, ratings, rationales", PHRASINGS)
def test_real_world_phrasings(text, count, ratings, rationales):
    result = parse_ratings(text, count=count)
    assert result.ratings == ratings
    if rationales is not None:
        assert result.rationales == rationales


REJECTED = [
    ("7.5", 1),  # off the 1-5 scale
    ("Rating: 0", 1),
    ("Rating: -1", 1),
    ("Score: 8/10", 1),  # another scale
    ("Rating: N/A (response 2 is empty)", 1),
    ("No rating can be given.", 1),
    ("", 1),
    ("Response 1: 4\nResponse 2: 3\nResponse 3: 2", 2),  # one rating too many
    ("Response 1: 4", 2),  # one too few
    ('{"ratings": [4, 3, 5]}', 2),
    ('{"ratings": [4, 3], "rationales": ["only one"]}', 2),
    ('{"verdict": "good"}', 1),
    ('{"rating": null}', 1),
    ("Rating: 4\nSome thought.\nRating: 2", 1),  # two rating lines that disagree
    ("I'd rate it 4.\nRating: 2", 1),  # a rating, then a rating line that disagrees
    ("The first is a 4 and the second a 3.", 1),  # two numbers, no label to choose
]


@pytest.mark.parametrize("text, count", REJECTED)
def test_unreadable_out_of_range_and_miscounted_replies_raise(text, count):
    with pytest.raises(ParseError) as caught:
        parse_ratings(text, count=count)
    assert caught.value.raw_text == text


def test_the_offline_model_rates_each_generation_in_a_recipe():
    frame = pl.DataFrame(
        {"instruction": ["Greet.", "Count."], "generations": [["hi", "hello", "hey"], ["1 2"]]}
    )
    out = ultrafeedback.step(aspect="truthfulness").run(frame, model="mock")
    assert out.schema["ratings"] == pl.List(pl.Float64)
    assert out.schema["rationales"] == pl.List(pl.String)
    assert [len(r) for r in out["ratings"]] == [3, 1]
    assert [len(r) for r in out["rationales"]] == [3, 1]
    assert all(1 <= r <= 5 for row in out["ratings"] for r in row)
    assert out["error"].is_null().all()


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
        parse_ratings(text)
    except ParseError:
        pass
    assert time.perf_counter() - started < 2  # backtracking would take minutes
