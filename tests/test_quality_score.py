"""Deita's quality scorer: its prompt and its program (the parser is complexity_score's)."""

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptflow_dsl import InputError, ParseError, Scores, quality_score

results = st.builds(
    Scores, scores=st.lists(st.floats(min_value=1, max_value=6), min_size=1, max_size=8)
)


def test_prompt_shows_the_instruction_and_numbers_every_response():
    (message,) = quality_score.render(" Explain tides. ", ["The moon.", "Gravity of moon and sun."])
    content = message["content"]
    assert "# Instruction\nExplain tides.\n" in content
    assert "## Response 1\nThe moon.\n\n## Response 2\nGravity of moon and sun." in content
    assert "from 1 (the worst) to 6 (the best)" in content


def test_nothing_to_score_is_an_input_error():
    with pytest.raises(InputError):
        quality_score.program("Explain tides.", [])


@given(results)
def test_round_trip_through_the_technique(result):
    text = quality_score.format(result)
    assert text.startswith("Response 1: ")
    assert quality_score.parse(text) == result
    assert quality_score.program("q", ["r"] * len(result.scores)).parse(text) == result


@pytest.mark.parametrize(
    "text, scores",
    [
        ("Response 1: 5\nResponse 2: 2", [5, 2]),
        ("Output 1: Score: 4/6\nOutput 2: Score: 6/6", [4, 6]),
        ('{"scores": [3.5, 1]}', [3.5, 1]),
        ("1. 6 - detailed\n2. 1 - wrong", [6, 1]),
    ],
)
def test_real_world_phrasings(text, scores):
    assert quality_score.program("q", ["a", "b"]).parse(text).scores == scores


def test_a_wrong_count_is_a_parse_error():
    with pytest.raises(ParseError):
        quality_score.program("q", ["a", "b", "c"]).parse("Response 1: 5\nResponse 2: 2")


def test_the_offline_model_scores_each_response():
    frame = pl.DataFrame({"instruction": ["Explain tides."], "responses": [["a", "b", "c", "d"]]})
    out = quality_score.step().run(frame, model="mock")
    (scores,) = out["scores"].to_list()
    assert len(scores) == 4 and all(1 <= s <= 6 for s in scores)
