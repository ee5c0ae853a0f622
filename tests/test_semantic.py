"""dedup_semantic and select_diverse: properties over random embeddings, and examples."""

import numpy as np
import polars as pl
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from promptflow_dsl import (
    InputError,
    MissingColumnError,
    dedup_semantic,
    embed,
    filter,
    select_diverse,
)
from promptflow_dsl._vectors import unit_rows

TOLERANCE = 1e-9
ERROR = {"step": "s", "type": "ProviderError", "message": "m", "attempts": 1, "raw_reply": None}

vectors = st.lists(st.integers(-2, 2), min_size=3, max_size=3)
rows = st.lists(
    st.tuples(
        st.one_of(vectors, st.none()),  # a null embedding now and then
        st.one_of(st.integers(0, 5), st.none()),  # a score, or none
        st.booleans(),  # failed earlier?
    ),
    min_size=0,
    max_size=30,
)


def frame_of(drawn) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": list(range(len(drawn))),
            "embedding": [v for v, _, _ in drawn],
            "score": [s for _, s, _ in drawn],
            "error": [ERROR if failed else None for _, _, failed in drawn],
        },
        schema={
            "id": pl.Int64,
            "embedding": pl.List(pl.Float64),
            "score": pl.Int64,
            "error": pl.Struct({k: pl.String for k in ERROR} | {"attempts": pl.Int64}),
        },
    )


def judged(frame: pl.DataFrame, *, score: bool) -> pl.DataFrame:
    ok = pl.col("embedding").is_not_null() & pl.col("error").is_null()
    return frame.filter(ok & pl.col("score").is_not_null() if score else ok)


def similarity(a, b) -> float:
    units = unit_rows(np.array([a, b], dtype=np.float64))
    return float(units[0] @ units[1])


@given(rows, st.floats(0.0, 1.0), st.sampled_from(["first", "score"]))
def test_dedup_properties(drawn, threshold, keep):
    frame = frame_of(drawn)
    out = dedup_semantic(threshold=threshold, keep=keep).run(frame)
    note(f"{frame}\n{out}")
    by_score = keep == "score"
    candidates = judged(frame, score=by_score)
    kept = judged(out, score=by_score)
    # Rows it cannot judge are never dropped, and carry no record.
    unjudged = set(frame["id"]) - set(candidates["id"])
    assert unjudged <= set(out["id"])
    assert out.filter(pl.col("id").is_in(list(unjudged)))["duplicates"].null_count() == len(
        unjudged
    )
    # No two kept rows are too close.
    vectors = kept["embedding"].to_list()
    for i, a in enumerate(vectors):
        for b in vectors[i + 1 :]:
            assert similarity(a, b) <= threshold + TOLERANCE
    # Every dropped row is recorded once, on a kept row it is too close to.
    dropped = set(frame["id"]) - set(out["id"])
    recorded = {
        d["row"]: (kept_id, d["similarity"])
        for kept_id, records in zip(kept["id"], kept["duplicates"], strict=True)
        for d in records
    }
    assert set(recorded) == dropped
    embedding = dict(zip(frame["id"], frame["embedding"], strict=True))
    for row, (kept_id, sim) in recorded.items():
        assert sim > threshold
        assert sim == pytest.approx(similarity(embedding[row], embedding[kept_id]), abs=1e-9)
        if by_score:  # the best row of a group is kept: none that was dropped scored more
            assert frame["score"][row] <= frame["score"][kept_id]
        else:  # the first occurrence is kept
            assert kept_id < row
    # The output keeps the input order.
    assert out["id"].to_list() == sorted(out["id"].to_list())


@given(rows, st.floats(0.0, 1.0))
def test_dedup_without_dropping_marks_the_same_rows(drawn, threshold):
    frame = frame_of(drawn)
    dropped = set(frame["id"]) - set(dedup_semantic(threshold=threshold).run(frame)["id"])
    marked = dedup_semantic(threshold=threshold, keep_dropped=True).run(frame)
    assert marked.height == frame.height
    duplicates = marked.filter(pl.col("duplicate_of").is_not_null())
    assert set(duplicates["id"]) == dropped
    assert (duplicates["duplicate_similarity"] > threshold).all()
    originals = set(duplicates["duplicate_of"])
    assert not originals & dropped  # each duplicate points at a row that is kept


@given(rows, st.integers(0, 8), st.floats(0.0, 1.0))
def test_selection_properties(drawn, k, threshold):
    frame = frame_of(drawn)
    out = select_diverse(k, threshold=threshold).run(frame)
    candidates = judged(frame, score=True)
    chosen = out.filter(pl.col("selection_rank").is_not_null())
    assert chosen.height <= k
    # Rows it cannot judge pass through; judged rows that are not chosen do not.
    passed = set(out["id"]) - set(chosen["id"])
    assert passed == set(frame["id"]) - set(candidates["id"])
    vectors = chosen.sort("selection_rank")["embedding"].to_list()
    for i, a in enumerate(vectors):
        for b in vectors[i + 1 :]:
            assert similarity(a, b) <= threshold + TOLERANCE
    # Ranks follow the scores: each pick scores no more than the one before it.
    scores = chosen.sort("selection_rank")["score"].to_list()
    assert scores == sorted(scores, reverse=True)
    assert chosen["selection_rank"].sort().to_list() == list(range(1, chosen.height + 1))
    # Too few picks only if every other candidate is too close to a pick.
    if chosen.height < k:
        picked = chosen["embedding"].to_list()
        for vector in candidates.filter(~pl.col("id").is_in(chosen["id"]))["embedding"]:
            assert max(similarity(vector, p) for p in picked) > threshold - TOLERANCE


def test_keep_the_best_by_a_score_column():
    frame = pl.DataFrame(
        {
            "instruction": ["a", "b", "c"],
            "embedding": [[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]],
            "quality": [1.0, 5.0, 2.0],
        }
    )
    out = dedup_semantic(threshold=0.9, keep="quality").run(frame)
    assert out["instruction"].to_list() == ["b", "c"]
    assert out["duplicates"].to_list()[0][0]["row"] == 0


def test_offline_recipe_drops_near_duplicate_instructions():
    texts = ["Write a poem about the sea.", "Name a river.", "write a poem about the sea"]
    recipe = embed() >> dedup_semantic(threshold=0.9) >> filter(pl.col("error").is_null())
    out = recipe.run(pl.DataFrame({"instruction": texts}), model="mock")
    assert out["instruction"].to_list() == texts[:2]


def test_arrays_of_float32_are_read_too():
    frame = pl.DataFrame(
        {"embedding": [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]},
        schema={"embedding": pl.Array(pl.Float32, 2)},
    )
    assert dedup_semantic().run(frame).height == 2


def test_what_it_cannot_read_is_an_input_error():
    with pytest.raises(InputError, match="not a list of floats"):
        dedup_semantic().run(pl.DataFrame({"embedding": ["text"]}))
    with pytest.raises(InputError, match="different lengths"):
        dedup_semantic().run(pl.DataFrame({"embedding": [[1.0], [1.0, 2.0]]}))
    with pytest.raises(InputError, match="not a number"):
        select_diverse(1).run(pl.DataFrame({"embedding": [[1.0]], "score": ["high"]}))


def test_columns_are_checked_when_composed_and_options_when_built():
    with pytest.raises(MissingColumnError):
        dedup_semantic(keep="quality").run(pl.DataFrame({"embedding": [[1.0]]}))
    with pytest.raises(ValueError, match="from -1 to 1"):
        dedup_semantic(threshold=1.5)
    with pytest.raises(ValueError, match="k must be at least 0"):
        select_diverse(-1)
    assert repr(embed() >> dedup_semantic() >> select_diverse(5)) == (
        "embed >> dedup_semantic >> select_diverse"
    )


def test_an_empty_frame_passes():
    empty = pl.DataFrame({"embedding": []}, schema={"embedding": pl.List(pl.Float32)})
    assert dedup_semantic().run(empty).height == 0
    assert select_diverse(3).run(empty.with_columns(score=pl.lit(1.0))).height == 0
