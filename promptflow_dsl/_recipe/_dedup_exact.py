"""``dedup_exact``: drop rows whose text equals an earlier one's once normalised.

>>> import polars as pl
>>> texts = ["Write a poem.", "write a  POEM", "Name a bird."]
>>> dedup_exact().run(pl.DataFrame({"instruction": texts}))
shape: (2, 2)
┌───────────────┬───────────────────┐
│ instruction   ┆ duplicates        │
│ ---           ┆ ---               │
│ str           ┆ list[str]         │
╞═══════════════╪═══════════════════╡
│ Write a poem. ┆ ["write a  POEM"] │
│ Name a bird.  ┆ []                │
└───────────────┴───────────────────┘
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._duplicates import Best, check, judged_rows, keep_order, normalise, record, recorded_columns
from ._step import Contract, FrameStep

if TYPE_CHECKING:
    import polars as pl

__all__ = ["DedupExact", "dedup_exact"]


@dataclass(frozen=True, repr=False)
class DedupExact(FrameStep):
    """Rows grouped by their normalised text; the first of each group in keep order stays."""

    column: str
    keep: str = "first"
    best: Best = "max"
    keep_dropped: bool = False
    normalise: bool = True
    name: str = "dedup_exact"
    row_wise = False  # a row is judged against every other row

    def __post_init__(self) -> None:
        check(self.name, "best", self.best, ok=self.best in ("max", "min"), reason="'max' or 'min'")

    @property
    def contract(self) -> Contract:
        needs = {self.column} if self.keep == "first" else {self.column, self.keep}
        return Contract(
            needs=frozenset(needs), adds=recorded_columns(keep_dropped=self.keep_dropped)
        )

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import numpy as np
        import polars as pl

        judged = judged_rows(frame, self.column)
        order = keep_order(frame, judged, self.keep, self.best)
        texts = frame[self.column].cast(pl.String).gather(order).to_list()
        keys = [normalise(t) for t in texts] if self.normalise else texts
        # Grouped on the texts themselves, not on a digest: no collision can merge two.
        groups = pl.DataFrame(
            {"row": order, "key": keys}, schema={"row": pl.Int64, "key": pl.String}
        )
        first = groups.select(pl.col("row").first().over("key")).to_series().to_numpy()
        duplicate_of = np.full(frame.height, -1, dtype=np.int64)
        duplicate = first != order
        duplicate_of[order[duplicate]] = first[duplicate]
        return record(frame, self.column, judged, duplicate_of, keep_dropped=self.keep_dropped)


def dedup_exact(
    column: str = "instruction",
    *,
    keep: str = "first",
    best: Best = "max",
    keep_dropped: bool = False,
    normalise: bool = True,
) -> DedupExact:
    """Drop each row whose *column* equals, once normalised, the text of a row kept before it.

    The rule (with ``normalise=True``): casefold, make every run of whitespace one space,
    and strip punctuation and whitespace from both ends, so ``"Write a poem."`` and
    ``" write a  POEM"`` are duplicates but ``"Write a poem, please"`` is not.
    ``normalise=False`` compares the texts as they are.

    ``keep="first"`` keeps the first row of each group; ``keep="score"`` (a column name)
    keeps the row with the best score, ``best="max"`` or ``"min"`` (ties, and rows without
    a score, go by row order). Kept rows stay in their order.

    Each kept row lists the texts it absorbed in ``duplicates``; with
    ``keep_dropped=True`` no row leaves, and each duplicate gets ``duplicate_of``, the
    position of its kept row. Rows with a null text, failed rows (``error`` not null) and
    rows flagged by an earlier step are never judged: they pass through as they are.

    >>> import polars as pl
    >>> frame = pl.DataFrame({"instruction": ["Hi!", "hi", "Bye"], "score": [1, 5, 2]})
    >>> dedup_exact(keep="score", keep_dropped=True).run(frame)["duplicate_of"].to_list()
    [1, None, None]
    """
    return DedupExact(column, keep, best, keep_dropped, normalise)
