"""``preference_pairs``: scored generations of one prompt become a chosen and a rejected one.

Each row holds a list of generations and a list of their scores (a judge's ratings, say).
The best-scored generation is *chosen*; the *rejected* one is the worst (``"worst"``) or a
random one among those scored lower (``"random"``, drawn from the seed and the row's own
text, never its position). A pair needs a margin of at least ``min_margin`` between the
two scores; a row without one keeps nulls and says why in ``notes``, so no row leaves the
output silently. Ties for best go to the earliest generation; unscored (null) ones are
left out.

Output columns: ``chosen``, ``rejected``, ``chosen_score``, ``rejected_score``.

>>> import polars as pl
>>> rows = pl.DataFrame({"generations": [["ok", "great", "bad"]], "ratings": [[3.0, 5.0, 1.0]]})
>>> preference_pairs().run(rows).select("chosen", "rejected", "chosen_score").row(0)
('great', 'bad', 5.0)
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._step import BOOKKEEPING_COLUMNS, Contract, FrameStep

if TYPE_CHECKING:
    import polars as pl

__all__ = ["PreferencePairs", "preference_pairs", "pick_pair"]

Rejected = Literal["worst", "random"]
_OUTPUTS = ("chosen", "rejected", "chosen_score", "rejected_score")


def _schema() -> dict[str, Any]:
    import polars as pl

    return {
        "chosen": pl.String,
        "rejected": pl.String,
        "chosen_score": pl.Float64,
        "rejected_score": pl.Float64,
        "notes": pl.List(pl.String),
    }


def pick_pair(
    scores: list[float | None], *, rejected: Rejected, min_margin: float, seed: str
) -> tuple[int, int] | str:
    """The positions of the chosen and the rejected generation, or why there is no pair.

    >>> pick_pair([3.0, 5.0, 1.0], rejected="worst", min_margin=0.0, seed="")
    (1, 2)
    >>> pick_pair([4.0, 4.0], rejected="worst", min_margin=0.0, seed="")
    'no pair: every scored generation has the same score'
    """
    scored = [(i, s) for i, s in enumerate(scores) if s is not None]
    if len(scored) < 2:
        return f"no pair: {len(scored)} scored generation(s), 2 needed"
    best, top = max(scored, key=lambda item: (item[1], -item[0]))
    lower = [(i, s) for i, s in scored if s < top and top - s >= min_margin]
    if not lower:
        if all(s == top for _, s in scored):
            return "no pair: every scored generation has the same score"
        return f"no pair: no score at least {min_margin:g} below the best ({top:g})"
    if rejected == "worst":
        worst, _ = min(lower, key=lambda item: (item[1], item[0]))
        return best, worst
    return best, random.Random(seed).choice(lower)[0]


@dataclass(frozen=True, repr=False)
class PreferencePairs(FrameStep):
    """Chosen and rejected generations, picked by score."""

    generations: str
    scores: str
    rejected: Rejected
    min_margin: float
    seed: int
    name: str = "preference_pairs"

    @property
    def contract(self) -> Contract:
        return Contract(needs=frozenset({self.generations, self.scores}), adds=(*_OUTPUTS, "notes"))

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import polars as pl

        failed = frame["error"].to_list() if "error" in frame.columns else [None] * frame.height
        notes = frame["notes"].to_list() if "notes" in frame.columns else [None] * frame.height
        rows = frame.select(self.generations, self.scores).iter_rows(named=True)
        picked: list[dict[str, Any]] = []
        for row, error, noted in zip(rows, failed, notes, strict=True):
            pair = self._pair(row) if error is None else None
            if isinstance(pair, str):  # no pair: the row stays, and says why
                noted, pair = [*(noted or []), f"{self.name}: {pair}"], None
            picked.append(
                {**_pair_columns(row, pair, self.generations, self.scores), "notes": noted}
            )
        made = pl.DataFrame(picked, schema=_schema())
        out = pl.concat([frame.drop(_OUTPUTS, "notes", strict=False), made], how="horizontal")
        trailing = [c for c in BOOKKEEPING_COLUMNS if c in out.columns]
        return out.select(pl.exclude(trailing), *trailing)  # bookkeeping columns go last

    def _pair(self, row: dict[str, Any]) -> tuple[int, int] | str | None:
        generations, scores = row[self.generations], row[self.scores]
        if generations is None or scores is None:
            return None
        if len(generations) != len(scores):
            return (
                f"no pair: {len(generations)} generations but {len(scores)} scores in "
                f"{self.scores!r}"
            )
        digest = hashlib.sha256(f"{self.seed}\x1f{generations}".encode()).hexdigest()
        return pick_pair(scores, rejected=self.rejected, min_margin=self.min_margin, seed=digest)


def _pair_columns(
    row: dict[str, Any], pair: tuple[int, int] | None, generations: str, scores: str
) -> dict[str, Any]:
    if pair is None:
        return dict.fromkeys(_OUTPUTS)
    best, other = pair
    return {
        "chosen": row[generations][best],
        "rejected": row[generations][other],
        "chosen_score": float(row[scores][best]),
        "rejected_score": float(row[scores][other]),
    }


def preference_pairs(
    generations: str = "generations",
    scores: str = "ratings",
    *,
    rejected: Rejected = "worst",
    min_margin: float = 0.0,
    seed: int = 0,
) -> PreferencePairs:
    """Pick a chosen and a rejected generation from each row's scored *generations*.

    *scores* names the list column of their scores (``ratings`` from ``ultrafeedback``).
    """
    if rejected not in ("worst", "random"):
        message = f"preference_pairs(rejected=...) is 'worst' or 'random', not {rejected!r}"
        raise ValueError(message)
    if min_margin < 0:
        message = f"preference_pairs(min_margin={min_margin}): a margin is never negative"
        raise ValueError(message)
    return PreferencePairs(generations, scores, rejected, min_margin, seed)
