"""What the dedup steps share: the text rule, which rows are judged, in which order, and
how a verdict is recorded.

A dedup step finds, for each row it judges, the kept row it duplicates (or none), given
as ``duplicate_of``: an array of row positions, -1 for a row that stays. :func:`record`
turns that into the output, in one of two shapes:

- ``keep_dropped=False`` (the default): the duplicates leave the frame, and each kept row
  lists their texts in ``duplicates`` (``List(String)``, in row order; empty if it had
  none). A ``duplicates`` column already in the frame (from an earlier dedup step) is
  carried on: a dropped row's own list moves to the row that absorbed it.
- ``keep_dropped=True``: every row stays; a duplicate gets ``duplicate_of``, the
  position (0-based, in this step's input and output alike) of the row it duplicates.

Rows not judged pass through as they are: a null text, a failed row (``error`` not null),
and a row that an earlier step already flagged (``duplicate_of`` not null).

>>> normalise("  Write a POEM about the sea!! ")
'write a poem about the sea'
"""

from __future__ import annotations

import sys
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from .._errors import AttributeValueError

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = [
    "Best",
    "check",
    "judged_rows",
    "keep_order",
    "normalise",
    "record",
    "recorded_columns",
]

Best = Literal["max", "min"]
"""Which score wins when a dedup step keeps the best row: the highest or the lowest."""


def check(step: str, name: str, value: object, *, ok: bool, reason: str) -> None:
    """Raise :class:`AttributeValueError` (a ValueError) unless *ok*: a step setting out of
    its range, from Python or from ``--set`` alike."""
    if not ok:
        message = f"step {step!r}: {name}={value!r} must be {reason}"
        raise AttributeValueError(message, technique=step, name=name, value=value, reason=reason)


@lru_cache(maxsize=1)
def _ends() -> str:
    """Every Unicode punctuation character (categories P*) and every whitespace character."""
    characters = (chr(c) for c in range(sys.maxunicode + 1))
    return "".join(c for c in characters if unicodedata.category(c)[0] == "P" or c.isspace())


def normalise(text: str) -> str:
    """*text* casefolded, its whitespace runs made one space, and the punctuation and
    whitespace at both ends removed. Two texts are exact duplicates when these are equal."""
    return " ".join(text.casefold().split()).strip(_ends())


def judged_rows(frame: pl.DataFrame, column: str) -> np.ndarray:
    """The positions of the rows a dedup step judges: a text, no error, not yet flagged."""
    import polars as pl

    judged = pl.col(column).is_not_null()
    if "error" in frame.columns:
        judged &= pl.col("error").is_null()
    if "duplicate_of" in frame.columns and frame.schema["duplicate_of"].is_integer():
        judged &= pl.col("duplicate_of").is_null()
    return frame.select(judged.arg_true()).to_series().to_numpy()


def keep_order(frame: pl.DataFrame, rows: np.ndarray, keep: str, best: Best) -> np.ndarray:
    """*rows* in the order they claim a place: row order for ``keep="first"``, else by the
    score column *keep*, the best first (ties and missing scores in row order, missing
    scores last)."""
    import polars as pl

    if keep == "first":
        return rows
    score = frame[keep].gather(rows)
    if score.dtype.is_float():
        score = score.fill_nan(None)
    ranked = pl.DataFrame({"row": rows, "score": score}).sort(
        ["score", "row"], descending=[best == "max", False], nulls_last=True
    )
    return ranked["row"].to_numpy()


def recorded_columns(*, keep_dropped: bool, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The columns :func:`record` adds."""
    return ("duplicate_of", *extra) if keep_dropped else ("duplicates",)


def record(
    frame: pl.DataFrame,
    column: str,
    judged: np.ndarray,
    duplicate_of: np.ndarray,
    *,
    keep_dropped: bool,
    extra: dict[str, pl.Series] | None = None,
) -> pl.DataFrame:
    """The step's output, from each row's verdict (see the module docstring).

    *judged* are the positions judged; *duplicate_of* holds, for every row, the position
    of the row it duplicates or -1. *extra* columns (one value a row, null where there is
    none) are written with ``keep_dropped=True`` only, over the nulls of a column of the
    same name.
    """
    import polars as pl

    dropped = duplicate_of >= 0
    if keep_dropped:
        flags = pl.Series("duplicate_of", duplicate_of, dtype=pl.Int64)
        new = [flags.set(~pl.Series(dropped), None), *(extra or {}).values()]
        # Verdicts of an earlier step (on rows not judged here) are kept.
        return frame.with_columns(
            pl.coalesce(c, frame[c.name])
            if c.name in frame.columns and frame.schema[c.name].is_numeric()
            else c
            for c in new
        )
    earlier = (
        frame["duplicates"]
        if frame.schema.get("duplicates") == pl.List(pl.String)
        else pl.Series("duplicates", [None] * frame.height, dtype=pl.List(pl.String))
    )
    rows = pl.DataFrame(
        {
            "row": pl.int_range(frame.height, eager=True),
            "target": duplicate_of,
            "text": frame[column].cast(pl.String),
            "earlier": earlier,
        }
    )
    absorbed = (
        rows.filter(pl.col("target") >= 0)
        .select("target", pl.concat_list("text", pl.col("earlier").fill_null([])).alias("items"))
        .group_by("target", maintain_order=True)  # rows in row order, so items are too
        .agg(pl.col("items").list.explode(keep_nulls=False, empty_as_null=False))
    )
    is_judged = pl.Series([False] * frame.height, dtype=pl.Boolean).scatter(judged, True)
    gathered = (
        rows.select("row", "earlier")
        .join(absorbed, left_on="row", right_on="target", how="left", maintain_order="left")
        .select(
            pl.when(is_judged)
            .then(pl.concat_list(pl.col("earlier").fill_null([]), pl.col("items").fill_null([])))
            .otherwise(pl.col("earlier"))
            .alias("duplicates")
        )
        .to_series()
    )
    return frame.with_columns(gathered).filter(~pl.Series(dropped))
