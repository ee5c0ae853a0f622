"""``select_top_k``: keep the *k* rows with the best score, overall or per group.

>>> import polars as pl
>>> frame = pl.DataFrame({"instruction": ["a", "b", "c", "d"], "score": [3, 9, 3, 5]})
>>> select_top_k(2, by="score").run(frame)
shape: (2, 2)
┌─────────────┬───────┐
│ instruction ┆ score │
│ ---         ┆ ---   │
│ str         ┆ i64   │
╞═════════════╪═══════╡
│ b           ┆ 9     │
│ d           ┆ 5     │
└─────────────┴───────┘
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._duplicates import check
from ._step import Contract, FrameStep

if TYPE_CHECKING:
    import polars as pl

__all__ = ["SelectTopK", "select_top_k"]


@dataclass(frozen=True, repr=False)
class SelectTopK(FrameStep):
    """The *k* best-scored rows (of each group), in their own order; failed rows stay."""

    k: int
    by: str
    descending: bool = True
    group_by: tuple[str, ...] = ()
    name: str = "select_top_k"
    row_wise = False  # the top of a chunk is not the top of the whole

    def __post_init__(self) -> None:
        check(self.name, "k", self.k, ok=self.k >= 0, reason="0 or more")

    @property
    def contract(self) -> Contract:
        return Contract(needs=frozenset({self.by, *self.group_by}))

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import polars as pl

        score = pl.col(self.by)
        if frame.schema[self.by].is_float():
            score = score.fill_nan(None)
        failed = pl.col("error").is_not_null() if "error" in frame.columns else pl.lit(False)
        ranked = (
            frame.select(*self.group_by, score.alias("_score"), failed.alias("_failed"))
            .with_row_index("_row")
            .filter(pl.col("_score").is_not_null() & ~pl.col("_failed"))
            .sort(["_score", "_row"], descending=[self.descending, False])
        )
        top = (
            ranked.group_by(self.group_by, maintain_order=True).head(self.k)
            if self.group_by
            else ranked.head(self.k)
        )
        chosen = pl.int_range(pl.len()).is_in(top["_row"].implode()) | failed
        return frame.filter(chosen)


def select_top_k(
    k: int,
    by: str = "score",
    *,
    descending: bool = True,
    group_by: str | Sequence[str] | None = None,
) -> SelectTopK:
    """Keep the *k* rows with the highest *by* (the lowest with ``descending=False``), or
    the *k* best of each *group_by* group. Kept rows stay in their order.

    Ties go to the earlier row. A row without a score (null or NaN) is never chosen; a
    failed row (``error`` not null) is not counted and stays, so the run still reports it.

    >>> import polars as pl
    >>> frame = pl.DataFrame({"topic": ["x", "x", "y"], "score": [1.0, 2.0, None]})
    >>> select_top_k(1, group_by="topic").run(frame)["score"].to_list()
    [2.0]
    """
    groups = (group_by,) if isinstance(group_by, str) else tuple(group_by or ())
    return SelectTopK(k, by, descending, groups)
