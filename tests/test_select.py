import math

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptflow_dsl import AttributeValueError, CompositionError, drop, select_top_k
from promptflow_dsl._recipe._llm_step import error_dtype

FAILED = {
    "step": "judge",
    "type": "ParseError",
    "message": "no score",
    "attempts": 1,
    "raw_reply": "?",
}


def test_keeps_the_top_k_in_row_order_with_ties_to_the_earlier_row():
    frame = pl.DataFrame({"id": range(6), "score": [2, 5, 5, 1, 5, 3]})
    assert select_top_k(2).run(frame)["id"].to_list() == [1, 2]
    assert select_top_k(4).run(frame)["id"].to_list() == [1, 2, 4, 5]
    assert select_top_k(2, descending=False).run(frame)["id"].to_list() == [0, 3]
    assert select_top_k(0).run(frame).height == 0
    assert select_top_k(10).run(frame).height == 6


def test_per_group_and_on_several_columns():
    frame = pl.DataFrame(
        {
            "id": range(7),
            "topic": ["a", "b", "a", "b", "a", None, None],
            "lang": ["en", "en", "en", "en", "fr", "en", "en"],
            "score": [1.0, 2.0, 3.0, 1.0, 0.5, 4.0, 2.0],
        }
    )
    assert select_top_k(1, group_by="topic").run(frame)["id"].to_list() == [1, 2, 5]
    assert select_top_k(1, group_by=["topic", "lang"]).run(frame)["id"].to_list() == [1, 2, 4, 5]


def test_rows_without_a_score_are_not_chosen_and_failed_rows_stay():
    frame = pl.DataFrame(
        {
            "id": range(5),
            "score": [None, math.nan, 1.0, 2.0, None],
            "error": pl.Series([None, None, None, None, FAILED], dtype=error_dtype()),
        }
    )
    out = select_top_k(1).run(frame)
    assert out["id"].to_list() == [3, 4]
    assert out["error"].is_not_null().sum() == 1


def test_columns_are_checked_when_composed_and_k_when_built():
    with pytest.raises(CompositionError, match="'select_top_k' needs column 'score'"):
        drop("score") >> select_top_k(3)
    with pytest.raises(CompositionError, match="needs column 'topic'"):
        drop("topic") >> select_top_k(3, by="quality", group_by="topic")
    with pytest.raises(AttributeValueError, match="k=-1 must be 0 or more"):
        select_top_k(-1)
    assert select_top_k(3, group_by="topic").contract.needs == {"score", "topic"}


def reference(scores, groups, k, descending):
    """The chosen rows, by a plain sort of (score, row) within each group."""
    chosen = []
    for group in dict.fromkeys(groups):
        rows = [i for i, g in enumerate(groups) if g == group and scores[i] is not None]
        rows.sort(key=lambda i: (-scores[i] if descending else scores[i], i))
        chosen += rows[:k]
    return sorted(chosen)


@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.integers(0, 4)), st.sampled_from("xyz")), max_size=40
    ),
    st.integers(0, 6),
    st.booleans(),
    st.booleans(),
)
def test_matches_a_plain_sort(rows, k, descending, grouped):
    scores = [s for s, _ in rows]
    groups = [g for _, g in rows] if grouped else ["all"] * len(rows)
    frame = pl.DataFrame(
        {"id": range(len(rows)), "score": scores, "group": groups},
        schema={"id": pl.Int64, "score": pl.Int64, "group": pl.String},
    )
    step = select_top_k(k, descending=descending, group_by="group" if grouped else None)
    out = step.run(frame)
    assert out["id"].to_list() == reference(scores, groups, k, descending)
    assert step.run(out).equals(out)  # the top k of the top k: the same rows
