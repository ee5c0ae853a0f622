"""Pure frame steps: explode, rename, select, drop, filter and sample. No model is called.

>>> import polars as pl
>>> frame = pl.DataFrame({"doc": ["a", "b"], "qs": [["q1", "q2"], ["q3"]]})
>>> (explode("qs", into="q") >> filter(pl.col("q") != "q2") >> select("q")).run(frame)
shape: (2, 1)
┌─────┐
│ q   │
│ --- │
│ str │
╞═════╡
│ q1  │
│ q3  │
└─────┘
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import PromptflowError
from ._step import Contract, RunContext, Step

if TYPE_CHECKING:
    import polars as pl

__all__ = ["drop", "explode", "filter", "rename", "sample", "select"]


@dataclass(frozen=True, repr=False)
class Explode(Step):
    """One row per element of a list column. A null list (a failed row) stays one row."""

    column: str
    into: str
    name: str = "explode"

    @property
    def contract(self) -> Contract:
        removes = frozenset() if self.into == self.column else frozenset({self.column})
        return Contract(needs=frozenset({self.column}), adds=(self.into,), removes=removes)

    async def apply(self, frame: pl.DataFrame, run: RunContext) -> pl.DataFrame:
        import polars as pl

        dtype = frame.schema[self.column]
        if not isinstance(dtype, pl.List):
            message = f"step {self.name!r}: column {self.column!r} is {dtype}, not a list"
            raise PromptflowError(message)
        # An empty list yields no row; a null list (a failed row) keeps one row, with its error.
        column = pl.col(self.column)
        exploded = frame.filter(column.is_null() | (column.list.len() > 0)).explode(self.column)
        return exploded if self.into == self.column else exploded.rename({self.column: self.into})


@dataclass(frozen=True, repr=False)
class Rename(Step):
    """Rename columns."""

    mapping: Mapping[str, str] = field(hash=False)
    name: str = "rename"

    @property
    def contract(self) -> Contract:
        return Contract(
            needs=frozenset(self.mapping),
            adds=tuple(self.mapping.values()),
            removes=frozenset(self.mapping) - set(self.mapping.values()),
        )

    async def apply(self, frame: pl.DataFrame, run: RunContext) -> pl.DataFrame:
        return frame.rename(dict(self.mapping))


@dataclass(frozen=True, repr=False)
class Select(Step):
    """Keep only these columns, in this order."""

    columns: tuple[str, ...]
    name: str = "select"

    @property
    def contract(self) -> Contract:
        return Contract(needs=frozenset(self.columns), keeps_only=self.columns)

    async def apply(self, frame: pl.DataFrame, run: RunContext) -> pl.DataFrame:
        return frame.select(self.columns)


@dataclass(frozen=True, repr=False)
class Drop(Step):
    """Remove these columns."""

    columns: tuple[str, ...]
    name: str = "drop"

    @property
    def contract(self) -> Contract:
        return Contract(needs=frozenset(self.columns), removes=frozenset(self.columns))

    async def apply(self, frame: pl.DataFrame, run: RunContext) -> pl.DataFrame:
        return frame.drop(self.columns)


@dataclass(frozen=True, repr=False)
class Filter(Step):
    """Keep the rows where a Polars expression is true."""

    predicate: pl.Expr = field(hash=False, compare=False)
    name: str = "filter"

    @property
    def contract(self) -> Contract:
        return Contract(needs=frozenset(self.predicate.meta.root_names()))

    async def apply(self, frame: pl.DataFrame, run: RunContext) -> pl.DataFrame:
        return frame.filter(self.predicate)


@dataclass(frozen=True, repr=False)
class Sample(Step):
    """A seeded random sample of rows: ``n`` rows or a ``fraction`` (capped at the frame)."""

    n: int | None = None
    fraction: float | None = None
    seed: int = 0
    name: str = "sample"

    @property
    def contract(self) -> Contract:
        return Contract()

    async def apply(self, frame: pl.DataFrame, run: RunContext) -> pl.DataFrame:
        if self.fraction is not None:
            return frame.sample(fraction=min(1.0, self.fraction), seed=self.seed)
        return frame.sample(n=min(self.n or 0, frame.height), seed=self.seed)


def explode(column: str, *, into: str | None = None) -> Explode:
    """One row per element of the list column *column*, renamed to *into*."""
    return Explode(column, into or column)


def rename(mapping: Mapping[str, str] | None = None, /, **columns: str) -> Rename:
    """Rename columns: ``rename({"old": "new"})`` or ``rename(old="new")``."""
    return Rename({**(mapping or {}), **columns})


def select(*columns: str) -> Select:
    """Keep only *columns*; later steps can read nothing else."""
    return Select(columns)


def drop(*columns: str) -> Drop:
    """Remove *columns*."""
    return Drop(columns)


def filter(predicate: pl.Expr) -> Filter:  # noqa: A001 - the verb users expect
    """Keep the rows where *predicate* (a Polars expression) is true."""
    import polars as pl

    if not isinstance(predicate, pl.Expr):
        message = f"filter takes a Polars expression such as pl.col('x') > 1, not {predicate!r}"
        raise TypeError(message)
    return Filter(predicate)


def sample(n: int | None = None, *, fraction: float | None = None, seed: int = 0) -> Sample:
    """A seeded random sample: *n* rows, or a *fraction* of them."""
    if (n is None) == (fraction is None):
        message = "sample takes either n or fraction"
        raise ValueError(message)
    return Sample(n, fraction, seed)
