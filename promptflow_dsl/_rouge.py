"""ROUGE-L near-duplicate detection, exactly as the ``rouge_score`` package scores it.

Tokens: lower-case, every run of non-alphanumerics becomes a space, split on whitespace
(``rouge_score`` without a stemmer). Score: the F-measure of the longest common
subsequence, ``2PR / (P + R)`` with ``P = lcs / len(other)`` and ``R = lcs / len(new)``,
computed in that order so the values match the reference to the last bit.

The LCS lengths come from RapidFuzz's C++ ``LCSseq`` over token-id strings, a block of
candidates against everything before it at a time, so a whole pass is a few matrix
calls instead of one Python LCS per pair.

>>> dedupe(["Write a poem about the sea.", "Write a poem about the sea!", "List primes."])
[True, False, True]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Verdict", "dedupe", "nearest_scores", "rouge_l", "rouge_tokens"]

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_BLOCK = 512


def rouge_tokens(text: str) -> list[str]:
    """``rouge_score``'s tokens: lower case, alphanumeric runs."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


def rouge_l(new: str, other: str) -> float:
    """The ROUGE-L F-measure of two texts (pure Python; for checks and small inputs)."""
    a, b = rouge_tokens(new), rouge_tokens(other)
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other_token in enumerate(b):
            current.append(
                previous[j] + 1 if token == other_token else max(previous[j + 1], current[j])
            )
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(b), lcs / len(a)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class Verdict:
    """The decision for one candidate, with its closest texts when it was kept."""

    kept: bool
    max_score: float
    most_similar: list[tuple[str, float]]
    avg_similarity_score: float | None


class _Vocabulary:
    """Tokens as single characters, so a text is a string RapidFuzz compares natively."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}

    def encode(self, text: str) -> str:
        chars = []
        for token in rouge_tokens(text):
            if token not in self._ids:
                code = len(self._ids) + 1
                self._ids[token] = chr(code if code < 0xD800 else code + 0x800)  # skip surrogates
            chars.append(self._ids[token])
        return "".join(chars)


def _f_measure(
    lcs: np.ndarray, new_length: int | np.ndarray, other_lengths: np.ndarray
) -> np.ndarray:
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        precision = lcs / other_lengths
        recall = lcs / new_length
        scores = 2 * precision * recall / (precision + recall)
    return np.where(lcs > 0, scores, 0.0)


def nearest_scores(texts: Sequence[str], against: Sequence[str]) -> list[float]:
    """Each text's highest ROUGE-L F-measure against any of *against* (0.0 if none).

    >>> nearest_scores(["Write a poem about the sea.", "List primes."], ["Write a sea poem."])
    [0.6, 0.0]
    """
    import numpy as np
    from rapidfuzz.distance import LCSseq
    from rapidfuzz.process import cdist

    if not texts or not against:
        return [0.0] * len(texts)
    vocabulary = _Vocabulary()
    new = [vocabulary.encode(t) for t in texts]
    old = [vocabulary.encode(t) for t in against]
    lcs = cdist(new, old, scorer=LCSseq.similarity, dtype=np.int32, workers=-1)
    new_lengths = np.array([len(e) for e in new], dtype=np.float64)[:, None]
    old_lengths = np.array([len(e) for e in old], dtype=np.float64)[None, :]
    return [float(x) for x in _f_measure(lcs, new_lengths, old_lengths).max(axis=1)]


def dedupe(
    candidates: Sequence[str],
    against: Sequence[str] = (),
    *,
    threshold: float = 0.7,
    top_k: int = 10,
    pool: Sequence[str] = (),
) -> list[bool]:
    """Which candidates survive, in order, against *against*, *pool* and earlier survivors."""
    return [v.kept for v in judge(candidates, against, threshold=threshold, top_k=top_k, pool=pool)]


def judge(
    candidates: Sequence[str],
    against: Sequence[str] = (),
    *,
    threshold: float = 0.7,
    top_k: int = 10,
    pool: Sequence[str] = (),
) -> list[Verdict]:
    """A :class:`Verdict` per candidate: rejected if its best score exceeds *threshold*."""
    import numpy as np
    from rapidfuzz.distance import LCSseq
    from rapidfuzz.process import cdist

    vocabulary = _Vocabulary()
    reference = [*against, *pool]
    texts = reference + list(candidates)
    encoded = [vocabulary.encode(t) for t in texts]
    lengths = np.array([len(e) for e in encoded], dtype=np.float64)
    kept = np.zeros(len(texts), dtype=bool)
    kept[: len(reference)] = True
    verdicts: list[Verdict] = []
    start = len(reference)
    for block in range(start, len(texts), _BLOCK):
        rows = range(block, min(block + _BLOCK, len(texts)))
        lcs = cdist(
            [encoded[i] for i in rows],
            encoded[: rows[-1]],
            scorer=LCSseq.similarity,
            dtype=np.int32,
            workers=-1,
        )
        for offset, i in enumerate(rows):
            columns = np.flatnonzero(kept[:i])
            length = len(encoded[i])
            scores = (
                _f_measure(lcs[offset, columns], length, lengths[columns])
                if length
                else np.zeros(len(columns))
            )
            best = float(scores.max()) if len(scores) else 0.0
            if best > threshold:
                verdicts.append(
                    Verdict(kept=False, max_score=best, most_similar=[], avg_similarity_score=None)
                )
                continue
            kept[i] = True
            order = np.argsort(scores, kind="stable")[-top_k:][::-1]
            closest = [(texts[columns[j]], float(scores[j])) for j in order]
            verdicts.append(
                Verdict(
                    kept=True,
                    max_score=best,
                    most_similar=closest,
                    avg_similarity_score=float(scores.mean()) if len(scores) else 0.0,
                )
            )
    return verdicts
