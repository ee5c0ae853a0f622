from collections import Counter

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptflow_dsl import (
    CompositionError,
    MissingColumnError,
    dedup_exact,
    drop,
    rename,
)
from promptflow_dsl._recipe._duplicates import normalise
from promptflow_dsl._recipe._llm_step import error_dtype

FAILED = {
    "step": "text_generation",
    "type": "ProviderError",
    "message": "HTTP 500",
    "attempts": 3,
    "raw_reply": None,
}


def frame_of(texts, *, failed=(), scores=None):
    columns = {
        "id": list(range(len(texts))),
        "instruction": texts,
        "error": pl.Series(
            [FAILED if i in failed else None for i in range(len(texts))], dtype=error_dtype()
        ),
    }
    if scores is not None:
        columns["score"] = scores
    return pl.DataFrame(columns)


# A small alphabet, so that texts equal once normalised are common.
texts = st.lists(st.one_of(st.none(), st.text(alphabet="aB .!\t", max_size=5)), max_size=30)


def reference(rows, *, keep=None, best="max"):
    """The row each judged row duplicates, by a plain loop: row -> kept row (or None)."""
    judged = [i for i, (text, failed, _) in enumerate(rows) if text is not None and not failed]
    if keep is not None:
        missing = [i for i in judged if rows[i][2] is None]
        scored = sorted(
            (i for i in judged if rows[i][2] is not None),
            key=lambda i: (-rows[i][2] if best == "max" else rows[i][2], i),
        )
        judged = scored + missing
    first: dict[str, int] = {}
    verdict = {}
    for i in judged:
        key = normalise(rows[i][0])
        verdict[i] = first.get(key)
        first.setdefault(key, i)
    return verdict


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Write a POEM about the sea!! ", "write a poem about the sea"),
        ("Write\ta\n\npoem.", "write a poem"),
        ("¿Qué tal?", "qué tal"),
        ("Straße", "strasse"),
        ("...", ""),
        ("A - B", "a - b"),  # inside the text, punctuation stays
        ('"Quoted," she said.', 'quoted," she said'),
    ],
)
def test_normalise_rule(text, expected):
    assert normalise(text) == expected


@given(st.text())
def test_normalise_is_idempotent(text):
    assert normalise(normalise(text)) == normalise(text)


def test_keeps_the_first_and_lists_what_it_absorbed():
    out = dedup_exact().run(
        frame_of(
            [
                "Write a poem.",
                "Name a bird",
                "write a  POEM",
                "NAME A BIRD!",
                "Write a poem, please.",
            ]
        )
    )
    assert out["id"].to_list() == [0, 1, 4]
    assert out["duplicates"].to_list() == [["write a  POEM"], ["NAME A BIRD!"], []]


def test_keeps_the_best_score_and_breaks_ties_by_row_order():
    frame = frame_of(["a", "A", "a.", "b", "B"], scores=[1.0, 3.0, 3.0, None, 2.0])
    best = dedup_exact(keep="score").run(frame)
    assert best["id"].to_list() == [1, 4]
    assert best["duplicates"].to_list() == [["a", "a."], ["b"]]
    lowest = dedup_exact(keep="score", best="min").run(frame)
    assert lowest["id"].to_list() == [0, 4]  # a row without a score comes last


def test_nan_scores_count_as_missing():
    frame = frame_of(["a", "a"], scores=[float("nan"), 1.0])
    assert dedup_exact(keep="score").run(frame)["id"].to_list() == [1]


def test_failed_rows_and_null_texts_are_never_judged():
    frame = frame_of(["Same.", "same", "same", None, None], failed={0})
    out = dedup_exact().run(frame)
    assert out["id"].to_list() == [0, 1, 3, 4]
    assert out["duplicates"].to_list() == [None, ["same"], None, None]
    assert out["error"].is_not_null().to_list() == [True, False, False, False]


def test_keep_dropped_flags_the_row_it_duplicates():
    out = dedup_exact(keep_dropped=True).run(frame_of(["x", "y", "X!", "x"], failed={3}))
    assert out["duplicate_of"].to_list() == [None, None, 0, None]
    assert "duplicates" not in out.columns
    again = dedup_exact(keep_dropped=True).run(out)
    assert again.equals(out)


def test_without_normalising_only_equal_texts_are_duplicates():
    out = dedup_exact(normalise=False).run(frame_of(["a", "A", "a"]))
    assert out["id"].to_list() == [0, 1]


def test_chained_steps_carry_the_record_over():
    frame = frame_of(["Poem.", "poem", "POEM!", "Bird"])
    first = dedup_exact(normalise=False).run(frame)
    assert first["duplicates"].to_list() == [[], [], [], []]
    second = dedup_exact().run(first)
    assert second["duplicates"].to_list() == [["poem", "POEM!"], []]


def test_columns_are_checked_when_composed_and_when_run():
    with pytest.raises(CompositionError, match="'dedup_exact' needs column 'instruction'"):
        rename(instruction="prompt") >> dedup_exact()
    with pytest.raises(CompositionError, match="needs column 'score'"):
        drop("score") >> dedup_exact(keep="score")
    with pytest.raises(MissingColumnError, match="'dedup_exact' needs column 'prompt'"):
        dedup_exact("prompt").run(pl.DataFrame({"instruction": ["a"]}))
    with pytest.raises(ValueError, match="best='top'"):
        dedup_exact(keep="score", best="top")  # type: ignore[arg-type]
    assert repr(dedup_exact() >> dedup_exact().named("again")) == "dedup_exact >> again"


@given(texts, st.sets(st.integers(0, 29)))
def test_matches_a_plain_loop_and_records_every_dropped_row(values, failed):
    frame = frame_of(values, failed=failed)
    out = dedup_exact().run(frame)
    verdict = reference([(t, i in failed, None) for i, t in enumerate(values)])
    kept = [i for i in range(len(values)) if verdict.get(i) is None]
    assert out["id"].to_list() == kept  # the survivors, in their order
    # No two judged survivors are equal once normalised.
    judged = [
        normalise(t)
        for t, d in zip(out["instruction"], out["duplicates"].to_list(), strict=True)
        if d is not None
    ]
    assert len(judged) == len(set(judged))
    # Every dropped text is listed on the row it duplicates, once, in row order.
    for row, listed in zip(out["id"], out["duplicates"].to_list(), strict=True):
        absorbed = [values[i] for i in sorted(i for i, k in verdict.items() if k == row)]
        assert (listed or []) == absorbed
    listed = Counter(t for d in out["duplicates"].to_list() if d for t in d)
    assert sum(listed.values()) == len(values) - out.height


@given(
    texts,
    st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=30, max_size=30),
    st.sampled_from(["max", "min"]),
)
def test_keep_by_score_matches_a_plain_loop(values, scores, best):
    scores = scores[: len(values)]
    frame = frame_of(values, scores=pl.Series(scores, dtype=pl.Int64))
    out = dedup_exact(keep="score", best=best, keep_dropped=True).run(frame)
    verdict = reference(
        [(t, False, s) for t, s in zip(values, scores, strict=True)], keep="score", best=best
    )
    assert out["duplicate_of"].to_list() == [verdict.get(i) for i in range(len(values))]


@given(texts, st.booleans())
def test_is_idempotent_and_both_shapes_agree(values, keep_dropped):
    frame = frame_of(values, failed={1})
    once = dedup_exact(keep_dropped=keep_dropped).run(frame)
    assert dedup_exact(keep_dropped=keep_dropped).run(once).equals(once)
    other = dedup_exact(keep_dropped=not keep_dropped).run(frame)
    flagged, dropped = (once, other) if keep_dropped else (other, once)
    assert (
        flagged.filter(pl.col("duplicate_of").is_null())["id"].to_list() == dropped["id"].to_list()
    )
    # A flagged row points at a survivor with the same normalised text.
    for text, target in zip(flagged["instruction"], flagged["duplicate_of"], strict=True):
        if target is not None:
            assert flagged["duplicate_of"][target] is None
            assert normalise(flagged["instruction"][target]) == normalise(text)
