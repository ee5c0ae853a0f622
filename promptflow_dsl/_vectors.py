"""Vectors: deterministic hashed embeddings, and a greedy walk that keeps rows apart.

:func:`hashed_embedding` is what the offline model and the loopback server answer an
embedding request with: the text's character trigrams hashed into signed buckets (the
hashing trick), as a unit vector. It is no language model, but texts that share most of
their trigrams get a high cosine similarity, so near-duplicates are near, the same on
every machine and in every process.

:func:`greedy_cover` is the one walk behind ``dedup_semantic`` and ``select_diverse``:
rows in a given order, each taken unless its cosine similarity to a row already taken
exceeds a threshold. It is exact (numpy, block by block: a block of rows is compared with
every row taken so far in one matrix product, then with the rows taken within the block).

>>> a, b, c = (hashed_embedding(t) for t in ("Write a poem about the sea.",
...     "Write a poem about the sea!", "List three prime numbers."))
>>> round(cosine(a, b), 2) > 0.9 > 0.3 > round(cosine(a, c), 2)
True
>>> import numpy as np
>>> cover = greedy_cover(np.array([a, b, c]), [0, 1, 2], threshold=0.9)
>>> cover.taken, {row: (kept, round(s, 2)) for row, (kept, s) in cover.skipped.items()}
([0, 2], {1: (0, 0.93)})
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DEFAULT_DIMENSIONS", "Cover", "cosine", "greedy_cover", "hashed_embedding", "unit_rows"]

DEFAULT_DIMENSIONS = 256
"""The length of a hashed embedding unless the request asks for another."""

_BLOCK = 512  # rows compared with the taken rows in one matrix product


@functools.lru_cache(maxsize=1 << 16)
def _bucket(trigram: str, dimensions: int) -> tuple[int, float]:
    """The bucket and sign of one trigram (a stable hash, not Python's seeded one)."""
    value = int.from_bytes(hashlib.blake2b(trigram.encode(), digest_size=8).digest(), "little")
    return value % dimensions, 1.0 if value >> 63 else -1.0


def hashed_embedding(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A deterministic unit vector of *dimensions* for *text* (lower-cased, spaces squeezed).

    >>> len(hashed_embedding("Hi", 8)), hashed_embedding("Hi", 8) == hashed_embedding(" hi ", 8)
    (8, True)
    """
    if dimensions < 1:
        message = f"an embedding needs at least one dimension, not {dimensions}"
        raise ValueError(message)
    padded = f"  {' '.join(text.lower().split())} "
    vector = [0.0] * dimensions
    for start in range(len(padded) - 2):
        index, sign = _bucket(padded[start : start + 3], dimensions)
        vector[index] += sign
    norm = sum(v * v for v in vector) ** 0.5
    return [v / norm for v in vector] if norm else vector


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two vectors (0 when either is all zeros)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5
    return dot / norms if norms else 0.0


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """The rows scaled to unit length, in float64; a row of zeros stays zeros."""
    import numpy as np

    rows = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


@dataclass
class Cover:
    """The rows taken, in the order taken, and for each row skipped, the taken row it is
    most similar to and that similarity."""

    taken: list[int] = field(default_factory=list)
    skipped: dict[int, tuple[int, float]] = field(default_factory=dict)


def greedy_cover(
    vectors: np.ndarray, order: Sequence[int], threshold: float, *, limit: int | None = None
) -> Cover:
    """Walk the rows of *vectors* in *order*: take each one unless its cosine similarity
    to a row taken before it exceeds *threshold*; stop once *limit* rows are taken.

    Rows after the stop are neither taken nor skipped. Similarities are clipped to
    [-1, 1], so a threshold of 1 skips nothing.
    """
    import numpy as np

    units = unit_rows(vectors) if len(order) else np.zeros((0, 0))
    cover = Cover()
    kept = np.empty_like(units)  # the taken rows' unit vectors, in the order taken
    for start in range(0, len(order), _BLOCK):
        rows = np.asarray(order[start : start + _BLOCK], dtype=np.int64)
        block = units[rows]
        # The most similar row taken in earlier blocks, for every row of this block.
        if cover.taken:
            earlier = np.clip(block @ kept[: len(cover.taken)].T, -1.0, 1.0)
            best_earlier = earlier.argmax(axis=1)
            best_sim = earlier[np.arange(len(rows)), best_earlier]
            best_row = np.asarray(cover.taken)[best_earlier]
        else:
            best_sim = np.full(len(rows), -np.inf)
            best_row = np.full(len(rows), -1)
        within = np.clip(block @ block.T, -1.0, 1.0)
        here: list[int] = []  # positions in this block that were taken
        for position, row in enumerate(rows.tolist()):
            if limit is not None and len(cover.taken) >= limit:
                return cover
            similarity, nearest = float(best_sim[position]), int(best_row[position])
            if here:
                scores = within[position, here]
                best = int(scores.argmax())
                if scores[best] > similarity:
                    similarity, nearest = float(scores[best]), int(rows[here[best]])
            if similarity > threshold:
                cover.skipped[row] = (nearest, similarity)
            else:
                here.append(position)
                kept[len(cover.taken)] = block[position]
                cover.taken.append(row)
    return cover
