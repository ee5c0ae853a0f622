import random
import sys
from contextlib import contextmanager

import datasketch
import numpy as np
import polars as pl
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from promptflow_dsl import AttributeValueError, CompositionError, dedup_exact, dedup_minhash, drop
from promptflow_dsl._recipe import _minhash
from promptflow_dsl._recipe._llm_step import error_dtype
from promptflow_dsl._recipe._minhash import (
    LSH_WEIGHTS,
    band_layout,
    permutations,
    shingle_hashes,
    shingle_text,
    shingles,
    signatures,
)

WORDS = ["sea", "poem", "write", "a", "about", "the", "short", "list", "Sea!", "ocean"]
# Few words, so that texts sharing most of their shingles are common.
sentences = st.lists(st.sampled_from(WORDS), max_size=9).map(" ".join)
modes = st.sampled_from([("char", 5), ("char", 3), ("word", 1), ("word", 2), ("word", 3)])


def jaccard(a, b):
    return len(a & b) / len(a | b)


@given(st.lists(st.text(max_size=40), min_size=1, max_size=8), modes)
def test_shingle_hashes_are_those_of_each_shingle_wherever_it_is(texts, mode):
    shingle, ngram = mode
    prepared = [shingle_text(t, shingle) for t in texts]
    together, offsets = shingle_hashes(prepared, shingle, ngram)
    for i, text in enumerate(prepared):
        alone, _ = shingle_hashes([text], shingle, ngram)
        assert together[offsets[i] : offsets[i + 1]].tolist() == alone.tolist()
        # One hash a shingle: as many distinct hashes as distinct shingles.
        assert len(set(alone.tolist())) == len(shingles(text, shingle, ngram))
        by_shingle = {
            s: shingle_hashes([s], shingle, ngram)[0][0] for s in shingles(text, shingle, ngram)
        }
        assert set(alone.tolist()) == {int(h) for h in by_shingle.values()}


@given(
    st.lists(st.text(max_size=60), min_size=1, max_size=6),
    st.sampled_from([2, 16, 128]),
    st.integers(0, 2**16),
    st.sampled_from([1, 3, 2**15]),
)
def test_signatures_equal_datasketch_minhash(texts, num_perm, seed, chunk):
    hashes, offsets = shingle_hashes([shingle_text(t, "char") for t in texts], "char", 5)
    with chunks_of(chunk):  # texts cut by a chunk's end too
        ours = signatures(hashes, offsets, permutations(num_perm, seed))
    for i in range(len(texts)):
        theirs = datasketch.MinHash(num_perm=num_perm, seed=seed, hashfunc=int, scheme="affine32")
        theirs.update_batch(hashes[offsets[i] : offsets[i + 1]].tolist())
        assert np.array_equal(ours[i], theirs.hashvalues)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.9])
def test_the_band_layout_is_the_one_datasketch_picks(threshold):
    lsh = datasketch.MinHashLSH(threshold=threshold, num_perm=128, weights=LSH_WEIGHTS)
    assert band_layout(threshold, 128) == (lsh.b, lsh.r)
    assert LSH_WEIGHTS == (0.1, 0.9)  # false negatives cost more: candidates are checked


@contextmanager
def chunks_of(shingles_at_once, characters_at_once=None):
    """Smaller work blocks than the module's, so tests cross their boundaries."""
    saved = _minhash._SHINGLES, _minhash._CHARACTERS
    _minhash._SHINGLES = shingles_at_once
    _minhash._CHARACTERS = characters_at_once or saved[1]
    try:
        yield
    finally:
        _minhash._SHINGLES, _minhash._CHARACTERS = saved


def reference(texts, *, threshold, num_perm, shingle, ngram, seed):
    """Each text's (kept row, Jaccard) or None, with datasketch's own MinHash and MinHashLSH."""
    lsh = datasketch.MinHashLSH(num_perm=num_perm, params=band_layout(threshold, num_perm))
    sets, verdicts = {}, []
    for i, text in enumerate(texts):
        prepared = shingle_text(text, shingle)
        sketch = datasketch.MinHash(num_perm=num_perm, seed=seed, hashfunc=int, scheme="affine32")
        sketch.update_batch(shingle_hashes([prepared], shingle, ngram)[0].tolist())
        sets[i] = shingles(prepared, shingle, ngram)
        best = None
        for kept in sorted(lsh.query(sketch)):
            similarity = jaccard(sets[i], sets[kept])
            if similarity >= threshold and (best is None or similarity > best[1]):
                best = (kept, similarity)
        verdicts.append(best)
        if best is None:
            lsh.insert(i, sketch)
    return verdicts


@given(
    st.lists(sentences, max_size=25),
    modes,
    st.sampled_from([0.5, 0.7, 0.9]),
    st.integers(0, 99),
)
def test_decisions_equal_datasketch_lsh_with_exact_checks(texts, mode, threshold, seed):
    shingle, ngram = mode
    step = dedup_minhash(
        threshold=threshold, shingle=shingle, ngram=ngram, seed=seed, keep_dropped=True
    )
    with chunks_of(7, characters_at_once=20):
        out = step.run(pl.DataFrame({"instruction": texts}, schema={"instruction": pl.String}))
    expected = reference(
        texts, threshold=threshold, num_perm=128, shingle=shingle, ngram=ngram, seed=seed
    )
    note(f"expected {expected}")
    assert out["duplicate_of"].to_list() == [v and v[0] for v in expected]
    assert out["jaccard"].to_list() == pytest.approx([v and v[1] for v in expected])


@given(st.lists(sentences, max_size=25), st.sampled_from([0.3, 0.6, 0.8]))
def test_a_dropped_row_is_always_a_true_near_duplicate_of_a_kept_row(texts, threshold):
    out = dedup_minhash(threshold=threshold, keep_dropped=True).run(
        pl.DataFrame({"instruction": texts}, schema={"instruction": pl.String})
    )
    sets = [shingles(shingle_text(t, "char"), "char", 5) for t in texts]
    for row, (target, similarity) in enumerate(
        zip(out["duplicate_of"], out["jaccard"], strict=True)
    ):
        if target is not None:
            assert target < row and out["duplicate_of"][target] is None
            assert similarity == jaccard(sets[row], sets[target]) >= threshold


@given(st.lists(sentences, max_size=20))
def test_drop_shape_agrees_with_flags_and_is_idempotent(texts):
    frame = pl.DataFrame(
        {"id": range(len(texts)), "instruction": texts},
        schema={"id": pl.Int64, "instruction": pl.String},
    )
    flagged = dedup_minhash(keep_dropped=True).run(frame)
    dropped = dedup_minhash().run(frame)
    assert (
        dropped["id"].to_list() == flagged.filter(pl.col("duplicate_of").is_null())["id"].to_list()
    )
    assert dedup_minhash().run(dropped).equals(dropped)
    for row, listed in zip(dropped["id"], dropped["duplicates"].to_list(), strict=True):
        assert listed == flagged.filter(pl.col("duplicate_of") == row)["instruction"].to_list()


def made_up_words(rng, count):
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    return ["".join(rng.choices(syllables, k=3)) for _ in range(count)]


def test_recall_on_constructed_near_duplicates_and_no_false_drops():
    rng = random.Random(7)
    vocab = made_up_words(rng, 3000)
    bases = [" ".join(rng.choices(vocab, k=12)) for _ in range(400)]
    variants = []
    for base in bases:
        words = base.split()
        words[rng.randrange(12)] = rng.choice(vocab)  # one word in twelve changed
        variants.append(" ".join(words).capitalize() + "!")
    similarities = [
        jaccard(
            shingles(shingle_text(a, "char"), "char", 5),
            shingles(shingle_text(b, "char"), "char", 5),
        )
        for a, b in zip(bases, variants, strict=True)
    ]
    close = [i for i, s in enumerate(similarities) if s >= 0.75]
    far = [i for i, s in enumerate(similarities) if s < 0.7]
    assert len(close) > 250
    out = dedup_minhash(threshold=0.7, keep_dropped=True).run(
        pl.DataFrame({"instruction": bases + variants})
    )
    found = out["duplicate_of"].to_list()
    # datasketch's band layout finds a pair at Jaccard 0.75 with probability 0.98.
    recall = sum(found[400 + i] == i for i in close) / len(close)
    assert recall >= 0.95, recall
    assert all(found[400 + i] is None for i in far)  # below the threshold: never dropped
    assert all(f is None for f in found[:400])  # the bases share about 0.05 of their shingles


def test_a_long_text_is_hashed_in_bounded_memory():
    long = " ".join(f"word{i}" for i in range(60_000))  # 470,000 characters
    texts = [long, long + " and one more", "short"]
    out = dedup_minhash(keep_dropped=True).run(pl.DataFrame({"instruction": texts}))
    assert out["duplicate_of"].to_list() == [None, 0, None]
    assert list(_minhash._blocks([long, "a", "b"])) == [(0, 1), (1, 3)]


def test_word_shingles_and_what_they_make_of_punctuation():
    assert shingle_text("Write, a POEM: now!", "word") == "write a poem now"
    assert shingles("write a poem now", "word", 3) == {"write a poem", "a poem now"}
    assert shingles("hi", "char", 5) == {"hi"} and shingles("", "word", 3) == {""}
    texts = [
        "Write a poem about the sea now",
        "write a poem, about the sea now!",
        "Write a poem about the moon now",
    ]
    out = dedup_minhash(shingle="word", ngram=2, keep_dropped=True).run(
        pl.DataFrame({"instruction": texts})
    )
    assert out["duplicate_of"].to_list() == [None, 0, None]  # 4 of 6 bigrams shared: 0.5


def test_keeps_the_best_score_and_never_judges_failed_rows_or_nulls():
    texts = [
        "Write a short poem about the sea.",
        "Write a short poem about the sea, please.",
        None,
        "write a short poem about the sea",
    ]
    failed = {
        "step": "s",
        "type": "ProviderError",
        "message": "x",
        "attempts": 1,
        "raw_reply": None,
    }
    frame = pl.DataFrame(
        {
            "instruction": texts,
            "score": [1.0, 5.0, 9.0, 9.0],
            "error": pl.Series([None, None, None, failed], dtype=error_dtype()),
        }
    )
    out = dedup_minhash(keep="score").run(frame)
    assert out["instruction"].to_list() == texts[1:]
    assert out["duplicates"].to_list() == [[texts[0]], None, None]


def test_composes_after_exact_dedup_and_carries_its_record():
    texts = [
        "Write a poem about the sea.",
        "WRITE A POEM ABOUT THE SEA",
        "Write a poem about the sea, please.",
    ]
    out = (dedup_exact() >> dedup_minhash()).run(pl.DataFrame({"instruction": texts}))
    assert out["duplicates"].to_list() == [[texts[1], texts[2]]]


def test_settings_are_checked_and_columns_too():
    for bad in (
        {"threshold": 0.0},
        {"num_perm": 1},
        {"ngram": 0},
        {"shingle": "byte"},
        {"best": "top"},
    ):
        with pytest.raises(AttributeValueError, match=f"step 'dedup_minhash': {next(iter(bad))}="):
            dedup_minhash(**bad)
    with pytest.raises(CompositionError, match="needs column 'quality'"):
        drop("quality") >> dedup_minhash(keep="quality")
    assert dedup_minhash().contract.adds == ("duplicates",)
    assert dedup_minhash(keep_dropped=True).contract.adds == ("duplicate_of", "jaccard")


def test_without_datasketch_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasketch", None)
    with pytest.raises(ImportError, match=r"pip install 'promptflow_dsl\[dedup\]'"):
        dedup_minhash()
