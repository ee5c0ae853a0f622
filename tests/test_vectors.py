"""Hashed embeddings and the greedy cover: properties, and a differential test against a
plain pairwise implementation of the same walk."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

from promptflow_dsl._vectors import cosine, greedy_cover, hashed_embedding, unit_rows

TOLERANCE = 1e-9  # matrix products and pairwise sums may differ in the last bits


@given(st.text(max_size=80), st.integers(1, 64))
def test_hashed_embeddings_are_unit_vectors_of_the_asked_length(text, dimensions):
    vector = hashed_embedding(text, dimensions)
    assert len(vector) == dimensions
    norm = math.sqrt(sum(v * v for v in vector))
    assert norm == pytest.approx(1.0) or norm == 0.0  # all trigrams may cancel out


@given(st.text(alphabet="abcXYZ .?", max_size=80))
def test_hashed_embeddings_ignore_case_and_runs_of_spaces(text):
    assert hashed_embedding(text) == hashed_embedding("  " + text.upper().replace(" ", "  "))


def test_near_duplicates_are_near_and_other_texts_are_not():
    sea = hashed_embedding("Write a short poem about the sea at night.")
    near = hashed_embedding("Write a short poem about the sea at night!")
    other = hashed_embedding("List three prime numbers greater than ten.")
    assert cosine(sea, near) > 0.9
    assert cosine(sea, other) < 0.3


def test_a_dimension_below_one_is_refused():
    with pytest.raises(ValueError, match="at least one dimension"):
        hashed_embedding("x", 0)


def naive_cover(vectors, order, threshold, limit=None):
    """The same walk, pairwise and in plain Python: the specification."""
    taken, skipped = [], {}
    for row in order:
        if limit is not None and len(taken) >= limit:
            break
        scores = [(cosine(vectors[row], vectors[t]), t) for t in taken]
        best = max(scores, key=lambda s: s[0], default=None)
        if best is not None and min(best[0], 1.0) > threshold:
            skipped[row] = (best[1], best[0])
        else:
            taken.append(row)
    return taken, skipped


small_vectors = st.integers(1, 40).flatmap(
    lambda n: st.lists(st.lists(st.integers(-3, 3), min_size=4, max_size=4), min_size=n, max_size=n)
)


@given(small_vectors, st.floats(-0.5, 1.0), st.randoms(use_true_random=False))
def test_cover_matches_the_pairwise_walk(rows, threshold, rng):
    vectors = np.array(rows, dtype=np.float64)
    sims = unit_rows(vectors) @ unit_rows(vectors).T
    # A similarity within rounding of the threshold may fall either way: out of contract.
    assume(not np.any(np.abs(sims - threshold) < TOLERANCE))
    order = list(range(len(rows)))
    rng.shuffle(order)
    cover = greedy_cover(vectors, order, threshold)
    taken, skipped = naive_cover(vectors.tolist(), order, threshold)
    note(f"order={order} taken={cover.taken} expected={taken}")
    assert cover.taken == taken
    assert cover.skipped.keys() == skipped.keys()
    for row, (_, similarity) in cover.skipped.items():
        assert similarity == pytest.approx(skipped[row][1], abs=TOLERANCE)


@given(small_vectors, st.floats(0.0, 1.0), st.one_of(st.none(), st.integers(0, 10)))
def test_cover_properties(rows, threshold, limit):
    vectors = np.array(rows, dtype=np.float64)
    units = unit_rows(vectors)
    order = list(range(len(rows)))
    cover = greedy_cover(vectors, order, threshold, limit=limit)
    taken = cover.taken
    if limit is not None:
        assert len(taken) <= limit
    assert not taken or taken[0] == 0 or limit == 0  # the first row is always taken
    for i, a in enumerate(taken):  # no two taken rows are too close
        for b in taken[i + 1 :]:
            assert float(units[a] @ units[b]) <= threshold + TOLERANCE
    for row, (kept, similarity) in cover.skipped.items():  # every record is complete
        assert kept in taken and taken.index(kept) < len(taken)
        assert kept < row  # the row it duplicated came first
        assert similarity > threshold
        assert similarity == pytest.approx(float(units[row] @ units[kept]), abs=TOLERANCE)
        assert similarity >= max(float(units[row] @ units[t]) for t in taken if t < row) - 1e-9
    if limit is None:
        assert sorted(taken + list(cover.skipped)) == order


def test_cover_crosses_blocks():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((300, 16))
    vectors = np.vstack([base, base + 1e-3 * rng.standard_normal((300, 16))])  # 600 rows
    cover = greedy_cover(vectors, list(range(600)), 0.99)
    assert sorted(cover.taken) == list(range(300))
    assert all(kept == row - 300 for row, (kept, _) in cover.skipped.items())


def test_zero_vectors_are_never_duplicates_and_a_threshold_of_one_skips_nothing():
    vectors = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    assert greedy_cover(vectors, [0, 1, 2, 3], 0.5).taken == [0, 1, 2]
    assert greedy_cover(vectors, [0, 1, 2, 3], 1.0).taken == [0, 1, 2, 3]
