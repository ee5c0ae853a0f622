"""``dedup_rouge_l``: drop rows whose text is a near-duplicate (ROUGE-L) of an earlier one.

>>> import polars as pl
>>> texts = ["Write a poem about the sea.", "Write a poem about seas."]
>>> dedup_rouge_l().run(pl.DataFrame({"instruction": texts}))["instruction"].to_list()
['Write a poem about the sea.']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._rouge import judge
from ._step import Contract, FrameStep

if TYPE_CHECKING:
    import polars as pl

__all__ = ["DedupRougeL", "dedup_rouge_l"]


@dataclass(frozen=True, repr=False)
class DedupRougeL(FrameStep):
    """Rows checked in order against ``against``, the pool, and the rows kept before them."""

    column: str
    threshold: float
    against: tuple[str, ...] = field(hash=False)
    top_k: int
    candidates: pl.Expr | None = field(default=None, hash=False, compare=False)
    name: str = "dedup_rouge_l"
    row_wise = False  # each row is judged against the rows before it

    @property
    def contract(self) -> Contract:
        return Contract(
            needs=frozenset({self.column}), adds=("most_similar", "avg_similarity_score")
        )

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import polars as pl

        texts = frame[self.column].to_list()
        scored = (
            frame["avg_similarity_score"].is_not_null()
            if "avg_similarity_score" in frame.columns
            else pl.repeat(False, frame.height, eager=True)
        )
        if self.candidates is not None:  # rows that are not candidates are the pool
            scored = scored | ~frame.select(self.candidates.fill_null(False)).to_series()
        judged = scored.to_list()
        pool = [t for t, done in zip(texts, judged, strict=True) if done and t is not None]
        todo = [
            i
            for i, (t, done) in enumerate(zip(texts, judged, strict=True))
            if not done and t is not None
        ]
        verdicts = dict(
            zip(
                todo,
                judge(
                    [texts[i] for i in todo],
                    self.against,
                    threshold=self.threshold,
                    top_k=self.top_k,
                    pool=pool,
                ),
                strict=True,
            )
        )
        keep = [not (i in verdicts and not verdicts[i].kept) for i in range(frame.height)]
        closest = [
            [{"text": t, "score": s} for t, s in verdicts[i].most_similar]
            if i in verdicts and verdicts[i].kept
            else None
            for i in range(frame.height)
        ]
        average = [
            verdicts[i].avg_similarity_score if i in verdicts else None for i in range(frame.height)
        ]
        columns = [
            pl.Series(
                "most_similar",
                closest,
                dtype=pl.List(pl.Struct({"text": pl.String, "score": pl.Float64})),
            ),
            pl.Series("avg_similarity_score", average, dtype=pl.Float64),
        ]
        # Rows judged in an earlier round keep their own scores.
        updated = frame.with_columns(
            pl.coalesce(column, frame[column.name]) if column.name in frame.columns else column
            for column in columns
        )
        return updated.filter(pl.Series(keep))


def dedup_rouge_l(
    column: str = "instruction",
    *,
    threshold: float = 0.7,
    against: Sequence[str] = (),
    top_k: int = 10,
    candidates: pl.Expr | None = None,
) -> DedupRougeL:
    """Keep a row only if its ROUGE-L F-measure against *against* and every kept row before
    it is at most *threshold* (the Self-Instruct paper's filter). Kept rows get
    ``most_similar`` (the *top_k* closest texts with scores) and ``avg_similarity_score``;
    rows that already have a score are the pool and are not judged again, and so are the
    rows outside *candidates* (a Polars expression), when it is given.
    """
    return DedupRougeL(column, threshold, tuple(against), top_k, candidates)
