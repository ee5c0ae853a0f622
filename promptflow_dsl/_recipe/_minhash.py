"""``dedup_minhash``: drop rows whose shingles overlap a kept row's by a Jaccard similarity
of at least a threshold, found with MinHash and LSH banding.

The contract, which ``tests/test_minhash.py`` proves against ``datasketch``:

- each row's signature equals ``datasketch.MinHash(num_perm, seed)`` (scheme
  ``affine32``) updated with the row's shingle hashes, computed here for a block of
  rows at once in numpy, in bounded memory however long a text is;
- the band layout is the one ``datasketch.MinHashLSH`` picks for the threshold, with
  false negatives weighted 9 to 1 (every candidate is checked, so a false candidate
  costs time only), and a row's candidates are the kept rows that
  ``MinHashLSH.query`` would return from an index of them;
- a candidate is a duplicate only if the exact Jaccard similarity of the two shingle
  sets is at least the threshold. So a dropped row is always a true near-duplicate; a
  true one is missed only when no band collides (recall: see ``docs/performance.md``).

The index is bucket numbers from sorting the band keys (numpy), not ``MinHashLSH``'s Python
sets: those took about 7 KB a row here, 7 GB for a million.

>>> import polars as pl
>>> texts = ["Write a short poem about the sea.", "Write a short poem about the sea, please.",
...          "List three prime numbers."]
>>> dedup_minhash().run(pl.DataFrame({"instruction": texts}))["instruction"].to_list()
['Write a short poem about the sea.', 'List three prime numbers.']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from ._duplicates import Best, check, judged_rows, keep_order, normalise, record, recorded_columns
from ._step import Contract, FrameStep

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = ["DedupMinHash", "dedup_minhash"]

Shingle = Literal["char", "word"]
"""What a shingle is made of: characters, or words (runs of letters and digits)."""

LSH_WEIGHTS = (0.1, 0.9)
"""False positive and false negative weights of the band layout (datasketch's option)."""

_CHARACTERS = 2**17  # text hashed at once: some 8 arrays of 8 bytes a character
_SHINGLES = 2**15  # shingles permuted at once: 16 MB of work array for 128 permutations
_BASE = 0x9E3779B97F4A7C15  # odd: a unit modulo 2**64, so it has an inverse
_MIX64 = (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53)  # MurmurHash3's 64-bit finaliser
_MIX32 = (0x85EBCA6B, 0xC2B2AE35)  # its 32-bit finaliser (datasketch's pre-mix)


def _datasketch() -> Any:
    """The ``datasketch`` module, or an ImportError that names the extra to install."""
    try:
        import datasketch
    except ImportError:
        message = "dedup_minhash needs datasketch: pip install 'promptflow_dsl[dedup]'"
        raise ImportError(message) from None
    return datasketch


def shingle_text(text: str, shingle: Shingle) -> str:
    """The text shingles are cut from: normalised, and for words, its words joined by one
    space (punctuation inside the text is dropped too)."""
    folded = normalise(text)
    return " ".join(re.findall(r"\w+", folded)) if shingle == "word" else folded


def shingles(text: str, shingle: Shingle, ngram: int) -> frozenset[str]:
    """The shingle set of a :func:`shingle_text`: each run of *ngram* characters or words.
    A text with fewer has one shingle, itself (so ``""`` has ``{""}``)."""
    if shingle == "char":
        return frozenset({text[i : i + ngram] for i in range(max(len(text) - ngram + 1, 1))})
    words = text.split(" ") if text else []
    count = max(len(words) - ngram + 1, 1)
    return frozenset({" ".join(words[i : i + ngram]) for i in range(count)})


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine permutations ``(a, b)`` for *num_perm* and *seed*, as uint32."""
    import numpy as np

    minhash = _datasketch().MinHash(num_perm=num_perm, seed=seed, scheme="affine32")
    a, b = minhash.permutations
    return np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)


@lru_cache(maxsize=16)
def band_layout(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that ``datasketch.MinHashLSH`` picks, with :data:`LSH_WEIGHTS`."""
    lsh = _datasketch().MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
    return lsh.b, lsh.r


def _fmix(values: np.ndarray, width: int) -> np.ndarray:
    """MurmurHash3's finaliser, a bijection that spreads the bits (wrapping arithmetic)."""
    import numpy as np

    kind = np.uint64 if width == 64 else np.uint32
    m1, m2 = _MIX64 if width == 64 else _MIX32
    s1, s2, s3 = (33, 33, 33) if width == 64 else (16, 13, 16)
    values = values ^ (values >> kind(s1))
    values = values * kind(m1)
    values = values ^ (values >> kind(s2))
    values = values * kind(m2)
    return values ^ (values >> kind(s3))


def shingle_hashes(texts: Sequence[str], shingle: Shingle, ngram: int) -> tuple[Any, Any]:
    """The 32-bit hash of every shingle of every :func:`shingle_text`, and each text's
    start in that array (one more offset than texts).

    A shingle is a span of the text; its hash is a polynomial over its code points modulo
    2**64 (read from prefix sums, so all spans cost the same), finalised and cut to 32
    bits. Equal shingles hash equal wherever they are. (A text's repeated shingle appears
    twice: a minimum does not mind.)
    """
    import numpy as np

    u64 = np.uint64
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    text_start = np.concatenate(([0], np.cumsum(lengths + 1)))[:-1]  # joined by a space
    joined = " ".join(texts).encode("utf-32-le", "surrogatepass")
    codes = np.frombuffer(joined, dtype=np.uint32).astype(u64) + u64(1)  # no 0 code
    size = len(codes)
    powers = np.full(size + 1, _BASE, dtype=u64)
    powers[0] = 1
    powers = np.cumprod(powers, dtype=u64)  # wraps: arithmetic modulo 2**64
    inverse = np.full(size + 1, pow(_BASE, -1, 2**64), dtype=u64)
    inverse[0] = 1
    inverse = np.cumprod(inverse, dtype=u64)
    prefix = np.zeros(size + 1, dtype=u64)
    np.cumsum(codes * powers[:size], dtype=u64, out=prefix[1:])
    if shingle == "char":
        units = lengths
    else:  # words: runs without a space (texts have no space at either end, none doubled)
        space = np.concatenate(([True], codes == u64(ord(" ") + 1), [True]))
        word_start = np.flatnonzero(space[:-2] & ~space[1:-1])
        word_end = np.append(np.flatnonzero(~space[1:-1] & space[2:]) + 1, 0)
        units = np.diff(np.searchsorted(word_start, np.append(text_start, size)))
    count = np.maximum(units - ngram + 1, 1)  # a text with fewer units: one shingle, itself
    offsets = np.concatenate(([0], np.cumsum(count)))
    owner = np.repeat(np.arange(len(texts)), count)
    within = np.arange(offsets[-1]) - offsets[:-1][owner]  # the shingle's first unit
    if shingle == "char":
        span_start = text_start[owner] + within
        span_end = span_start + np.minimum(ngram, units[owner])
    else:
        first = (np.cumsum(units) - units)[owner] + within
        last = first + np.minimum(ngram, units[owner]) - 1  # -1 (no word): the sentinel 0
        empty = units[owner] == 0
        span_start = np.where(empty, text_start[owner], np.append(word_start, 0)[first])
        span_end = np.where(empty, text_start[owner], word_end[last])
    raw = (prefix[span_end] - prefix[span_start]) * inverse[span_start]
    return (_fmix(raw, 64) >> u64(32)).astype(np.uint32), offsets


def signatures(
    hashes: np.ndarray, offsets: np.ndarray, perms: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Each text's MinHash signature (texts x permutations, uint32), as datasketch computes
    it: the minimum over the text's shingles of ``a * fmix32(h) + b`` modulo 2**32.

    Shingles are permuted :data:`_SHINGLES` at a time, so a long text needs no more memory
    than a short one: a text cut by a chunk's end takes the minimum of its two parts.
    """
    import numpy as np

    a, b = perms
    mixed = _fmix(hashes, 32)
    out = np.full((len(offsets) - 1, len(a)), np.iinfo(np.uint32).max, dtype=np.uint32)
    for start in range(0, len(mixed), _SHINGLES):
        end = min(start + _SHINGLES, len(mixed))
        first = int(np.searchsorted(offsets, start, side="right")) - 1
        last = int(np.searchsorted(offsets, end, side="left"))  # texts first..last-1 meet it
        permuted = a[:, None] * mixed[None, start:end]  # permutations x shingles
        permuted += b[:, None]
        cuts = np.maximum(offsets[first:last], start) - start
        part = np.minimum.reduceat(permuted, cuts, axis=1).T  # reduced along rows: fast
        np.minimum(out[first:last], part, out=out[first:last])
    return out


def _blocks(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive texts of about :data:`_CHARACTERS` in all (one at least)."""
    import numpy as np

    ends = np.cumsum(np.fromiter((len(t) + 1 for t in texts), dtype=np.int64, count=len(texts)))
    start = 0
    while start < len(texts):
        before = int(ends[start - 1]) if start else 0
        end = int(np.searchsorted(ends, before + _CHARACTERS, side="right"))
        yield start, max(end, start + 1)
        start = max(end, start + 1)


def band_keys(texts: Sequence[str], step: DedupMinHash) -> np.ndarray:
    """One 64-bit key per text and band (texts x bands): equal bands, equal keys."""
    import numpy as np

    bands, rows = band_layout(step.threshold, step.num_perm)
    perms = permutations(step.num_perm, step.seed)
    keys = np.empty((len(texts), bands), dtype=np.uint64)
    for start, end in _blocks(texts):
        block = texts[start:end]
        hashes, offsets = shingle_hashes(block, step.shingle, step.ngram)
        signature = signatures(hashes, offsets, perms)[:, : bands * rows].astype(np.uint64)
        folded = np.zeros((len(block), bands), dtype=np.uint64)
        for column in range(rows):
            folded = _fmix(folded ^ signature[:, column::rows][:, :bands], 64)
        keys[start : start + len(block)] = folded
    return keys


def near_duplicates(
    keys: np.ndarray, similarity: Callable[[int, int], float], threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """For rows in keep order (their band *keys*), the row each duplicates (-1: none) and
    the similarity with it (NaN: none).

    A row is checked against the kept rows before it that share a band with it, the best
    one whose exact *similarity* is at least *threshold* wins (the first on a tie); a row
    that duplicates none is kept. Rows that share no band with any row are kept at once.
    """
    import numpy as np

    count, bands = keys.shape
    bucket = np.empty((count, bands), dtype=np.int32 if count * bands < 2**31 else np.int64)
    shared = np.empty((count, bands), dtype=bool)
    seen = 0
    for band in range(bands):
        _, inverse, sizes = np.unique(keys[:, band], return_inverse=True, return_counts=True)
        bucket[:, band] = inverse + seen
        shared[:, band] = sizes[inverse] > 1
        seen += len(sizes)
    duplicate_of = np.full(count, -1, dtype=np.int64)
    score = np.full(count, np.nan)
    members: dict[int, list[int]] = {}
    for row in np.flatnonzero(shared.any(axis=1)).tolist():
        mine = bucket[row][shared[row]].tolist()
        candidates = sorted({kept for b in mine for kept in members.get(b, ())})
        best, best_score = -1, -1.0
        for kept in candidates:
            value = similarity(row, kept)
            if value >= threshold and value > best_score:
                best, best_score = kept, value
        if best >= 0:
            duplicate_of[row], score[row] = best, best_score
        else:
            for b in mine:
                members.setdefault(b, []).append(row)
    return duplicate_of, score


@dataclass(frozen=True, repr=False)
class DedupMinHash(FrameStep):
    """Near-duplicates by the Jaccard similarity of shingle sets, found with MinHash LSH."""

    column: str
    threshold: float = 0.7
    num_perm: int = 128
    shingle: Shingle = "char"
    ngram: int = 5
    keep: str = "first"
    best: Best = "max"
    keep_dropped: bool = False
    seed: int = 1
    name: str = "dedup_minhash"
    row_wise = False  # a row is judged against every other row

    def __post_init__(self) -> None:
        check(
            self.name, "threshold", self.threshold, ok=0 < self.threshold <= 1, reason="in (0, 1]"
        )
        check(self.name, "num_perm", self.num_perm, ok=self.num_perm >= 2, reason="2 or more")
        check(self.name, "ngram", self.ngram, ok=self.ngram >= 1, reason="1 or more")
        check(
            self.name,
            "shingle",
            self.shingle,
            ok=self.shingle in ("char", "word"),
            reason="'char' or 'word'",
        )
        check(self.name, "best", self.best, ok=self.best in ("max", "min"), reason="'max' or 'min'")
        _datasketch()  # fail when the recipe is built, not when it runs
        try:
            band_layout(self.threshold, self.num_perm)
        except ValueError:  # datasketch's layout for a threshold near 1 has one band
            reason = f"low enough for datasketch to make 2 bands of {self.num_perm} permutations"
            check(self.name, "threshold", self.threshold, ok=False, reason=reason)

    @property
    def contract(self) -> Contract:
        needs = {self.column} if self.keep == "first" else {self.column, self.keep}
        adds = recorded_columns(keep_dropped=self.keep_dropped, extra=("jaccard",))
        return Contract(needs=frozenset(needs), adds=adds)

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import numpy as np
        import polars as pl

        judged = judged_rows(frame, self.column)
        order = keep_order(frame, judged, self.keep, self.best)
        texts = [shingle_text(t, self.shingle) for t in frame[self.column].gather(order)]

        @lru_cache(maxsize=4096)  # a kept row is often checked by the next few rows
        def shingled(position: int) -> frozenset[str]:
            return shingles(texts[position], self.shingle, self.ngram)

        def jaccard(one: int, other: int) -> float:
            a, b = shingled(one), shingled(other)
            return len(a & b) / len(a | b)

        found, score = near_duplicates(band_keys(texts, self), jaccard, self.threshold)
        duplicate_of = np.full(frame.height, -1, dtype=np.int64)
        similarity = np.full(frame.height, np.nan)
        dropped = found >= 0
        duplicate_of[order[dropped]] = order[found[dropped]]
        similarity[order[dropped]] = score[dropped]
        extra = {"jaccard": pl.Series("jaccard", similarity).fill_nan(None)}
        return record(
            frame, self.column, judged, duplicate_of, keep_dropped=self.keep_dropped, extra=extra
        )


def dedup_minhash(
    column: str = "instruction",
    *,
    threshold: float = 0.7,
    num_perm: int = 128,
    shingle: Shingle = "char",
    ngram: int = 5,
    keep: str = "first",
    best: Best = "max",
    keep_dropped: bool = False,
    seed: int = 1,
) -> DedupMinHash:
    """Drop each row whose *column* is a near-duplicate of a row kept before it: the
    Jaccard similarity of their shingle sets is at least *threshold*.

    Texts are normalised as in :func:`dedup_exact`. A shingle is a run of *ngram*
    characters (``shingle="char"``, the default: 5) or words (``"word"``). Characters suit
    short instructions: one word changed in ten leaves about 0.7 of the character
    5-grams but 0.45 of the word 3-grams. *num_perm* permutations (datasketch's, from
    *seed*) make the signatures; LSH finds candidates, each checked exactly.

    ``keep``, ``best``, ``keep_dropped`` and the rows never judged are as in
    :func:`dedup_exact`; with ``keep_dropped=True`` a duplicate also gets ``jaccard``,
    its similarity with the row it duplicates. Needs ``pip install 'promptflow_dsl[dedup]'``.
    """
    return DedupMinHash(column, threshold, num_perm, shingle, ngram, keep, best, keep_dropped, seed)
