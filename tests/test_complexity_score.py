"""Deita's complexity scorer: its prompt, its result type and its text parser.

Inputs come from strategies written here, never from the parser: scores from 1 to 6.
"""

import polars as pl
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from pydantic import ValidationError

from promptflow_dsl import InputError, ParseError, Scores, complexity_score
from promptflow_dsl.techniques.complexity_score import format_scores, parse_scores

score = st.floats(min_value=1, max_value=6) | st.integers(1, 6).map(float)
results = st.builds(Scores, scores=st.lists(score, min_size=1, max_size=8))
labels = st.sampled_from(["Instruction", "Response", "Item"])

header = st.sampled_from(["", "Instruction {n}: ", "[Score {n}]: ", "{n}. ", "Question {n} - "])
number = st.integers(-1, 9).map(str) | st.floats(0, 8).map("{:.2f}".format)
suffix = st.sampled_from(["", "/6", "/10", " out of 6", "**", " (harder)"])
judge_like = st.lists(st.tuples(header, number, suffix), min_size=1, max_size=6).map(
    lambda items: "\n".join(h.format(n=i) + n + s for i, (h, n, s) in enumerate(items, 1))
)
replies = judge_like | st.text()


def test_prompt_numbers_every_instruction_and_asks_for_a_ranking():
    (message,) = complexity_score.render(["Sort a list.", "Sort it in place, stably."])
    content = message["content"]
    assert (
        "## Instruction 1\nSort a list.\n\n## Instruction 2\nSort it in place, stably." in content
    )
    assert "from 1 (the simplest) to 6 (the most complex)" in content
    assert "Instruction <number>: <a score from 1 to 6>" in content


def test_nothing_to_score_is_an_input_error():
    with pytest.raises(InputError):
        complexity_score.program([])


def test_the_program_insists_on_one_score_per_instruction():
    program = complexity_score.program(["a", "b"])
    schema = program.result_type.model_json_schema()["properties"]["scores"]
    assert schema["minItems"] == schema["maxItems"] == 2
    assert schema["items"] == {"type": "number", "minimum": 1, "maximum": 6}
    with pytest.raises(ValidationError):
        program.result_type(scores=[1, 2, 3])
    with pytest.raises(ParseError):
        program.parse("Instruction 1: 2")
    assert program.parse("Instruction 1: 2\nInstruction 2: 5") == Scores(scores=[2, 5])


@pytest.mark.parametrize("scores", [[], [0.9], [6.5], [3, 7]])
def test_the_result_type_checks_the_scale(scores):
    with pytest.raises(ValidationError):
        Scores(scores=scores)


@given(results, labels)
def test_round_trip(result, label):
    text = format_scores(result, label=label)
    note(text)
    assert parse_scores(text) == result
    assert parse_scores(text, count=len(result.scores)) == result


@given(replies)
def test_arbitrary_text_parses_or_raises_parse_error(text):
    for count in (None, 1, 3):
        try:
            result = parse_scores(text, count=count)
        except ParseError as exc:
            assert exc.raw_text == text
        else:
            assert all(1 <= s <= 6 for s in result.scores)
            assert count is None or len(result.scores) == count


@given(replies)
def test_idempotent(text):
    try:
        result = parse_scores(text)
    except ParseError:
        return
    assert parse_scores(format_scores(result)) == result


PHRASINGS = [
    ("Instruction 1: 2\nInstruction 2: 5", 2, [2, 5]),
    ("[Score 1]: 1\n[Score 2]: 3\n[Score 3]: 6", 3, [1, 3, 6]),
    ("1. 2\n2. 4\n3. 6", 3, [2, 4, 6]),
    ("Scores: 2, 4, 5", 3, [2, 4, 5]),
    ("[1, 3.5, 6]", 3, [1, 3.5, 6]),
    ('{"scores": [2, 5]}', 2, [2, 5]),
    ('{"complexity": [{"score": 2}, {"score": 4}]}', 2, [2, 4]),
    ("Instruction 1: **2** (simple lookup)\nInstruction 2: 5 - many constraints", 2, [2, 5]),
    ("Question 1 - Score: 3/6\nQuestion 2 - Score: 5 out of 6", 2, [3, 5]),
    ("### Instruction 1\nScore: 1\n### Instruction 2\nScore: 4.5", 2, [1, 4.5]),
    (
        "Ranking from simplest:\n\nInstruction 1: 1\nInstruction 2: 2\n\nThe second adds a constraint.",
        2,
        [1, 2],
    ),
    ("Score: 4", 1, [4]),
    ("5.5", 1, [5.5]),
    ("**6**", 1, [6]),
    ("Complexity score: 3/6 - a two-step task.", 1, [3]),
    ("Instruction #1: 2\nInstruction #2: 6", 2, [2, 6]),
]


@pytest.mark.parametrize("text, count, scores", PHRASINGS)
def test_real_world_phrasings(text, count, scores):
    assert parse_scores(text, count=count).scores == scores


REJECTED = [
    ("Instruction 1: 7\nInstruction 2: 3", 2),  # off the 1-6 scale
    ("Instruction 1: 0\nInstruction 2: 3", 2),
    ("Score: 4/5", 1),  # another scale
    ("Instruction 1: 2\nInstruction 2: 3\nInstruction 3: 4", 2),
    ("Instruction 1: 2", 2),
    ("Instruction 2: 3\nInstruction 3: 4", 2),  # numbering that does not start at 1
    ("[2, 4]", 3),
    ("The first is harder.", 1),
]


@pytest.mark.parametrize("text, count", REJECTED)
def test_unreadable_out_of_range_and_miscounted_replies_raise(text, count):
    with pytest.raises(ParseError) as caught:
        parse_scores(text, count=count)
    assert caught.value.raw_text == text


def test_the_offline_model_scores_each_instruction():
    frame = pl.DataFrame({"instructions": [["Sort.", "Sort stably.", "Sort in O(n)."], ["Add."]]})
    out = complexity_score.step().run(frame, model="mock")
    assert out.schema["scores"] == pl.List(pl.Float64)
    assert [len(s) for s in out["scores"]] == [3, 1]
    assert all(1 <= s <= 6 for row in out["scores"] for s in row)
