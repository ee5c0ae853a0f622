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

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import PromptflowError
from ._step import BOOKKEEPING_COLUMNS, Contract, FrameStep

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "choose",
    "conversation",
    "drop",
    "explode",
    "filter",
    "filter_keywords",
    "filter_length",
    "rename",
    "sample",
    "select",
    "unnest",
]


@dataclass(frozen=True, repr=False)
class Explode(FrameStep):
    """One row per element of a list column. A null list (a failed row) stays one row, and so
    does an empty list that a technique returned, as a failed row."""

    column: str
    into: str
    name: str = "explode"

    @property
    def contract(self) -> Contract:
        removes = frozenset() if self.into == self.column else frozenset({self.column})
        return Contract(needs=frozenset({self.column}), adds=(self.into,), removes=removes)

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import polars as pl

        dtype = frame.schema[self.column]
        if not isinstance(dtype, pl.List):
            message = f"step {self.name!r}: column {self.column!r} is {dtype}, not a list"
            raise PromptflowError(message)
        exploded = _flag_empty_lists(frame, self.column, self.name).explode(self.column)
        if self.into == self.column:
            return exploded
        # Like any step's output column, *into* replaces an input column of that name.
        return exploded.drop(self.into, strict=False).rename({self.column: self.into})


def _flag_empty_lists(frame: pl.DataFrame, column: str, step: str) -> pl.DataFrame:
    """Rows whose list is empty, in a frame a technique made (it has an ``error`` column),
    become failed rows that say so, so a document never leaves the output silently.

    Elsewhere an empty list yields no row, as in Polars. A null list (a failed row) keeps
    one row, with its error.
    """
    import polars as pl

    from ._llm_step import error_dtype

    if "error" not in frame.columns:
        return frame.filter(pl.col(column).is_null() | (pl.col(column).list.len() > 0))
    empty = pl.col(column).list.len().eq(0) & pl.col("error").is_null()
    reason = {
        "step": step,
        "type": "EmptyResult",
        "message": f"column {column!r} is an empty list: no item to make a row of",
        "attempts": 0,
        "raw_reply": None,
    }
    flagged = pl.lit(pl.Series([reason], dtype=error_dtype())).first()
    return frame.with_columns(
        pl.when(empty).then(flagged).otherwise(pl.col("error")).alias("error"),
        pl.when(empty).then(None).otherwise(pl.col(column)).alias(column),
    )


@dataclass(frozen=True, repr=False)
class Rename(FrameStep):
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

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.rename(dict(self.mapping))


@dataclass(frozen=True, repr=False)
class Select(FrameStep):
    """Keep only these columns, in this order."""

    columns: tuple[str, ...]
    name: str = "select"

    @property
    def contract(self) -> Contract:
        return Contract(needs=frozenset(self.columns), keeps_only=self.columns)

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(self.columns)


@dataclass(frozen=True, repr=False)
class Drop(FrameStep):
    """Remove these columns."""

    columns: tuple[str, ...]
    name: str = "drop"

    @property
    def contract(self) -> Contract:
        return Contract(needs=frozenset(self.columns), removes=frozenset(self.columns))

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.drop(self.columns)


@dataclass(frozen=True, repr=False)
class Filter(FrameStep):
    """Keep the rows where a Polars expression is true."""

    predicate: pl.Expr = field(hash=False, compare=False)
    name: str = "filter"

    @property
    def contract(self) -> Contract:
        return Contract(needs=frozenset(self.predicate.meta.root_names()))

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(self.predicate)


@dataclass(frozen=True, repr=False)
class Sample(FrameStep):
    """A seeded random sample of rows: ``n`` rows or a ``fraction`` (capped at the frame)."""

    n: int | None = None
    fraction: float | None = None
    seed: int = 0
    name: str = "sample"
    row_wise = False  # a sample of a chunk is not a sample of the whole

    @property
    def contract(self) -> Contract:
        return Contract()

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        if self.fraction is not None:
            return frame.sample(fraction=min(1.0, self.fraction), seed=self.seed)
        return frame.sample(n=min(self.n or 0, frame.height), seed=self.seed)


@dataclass(frozen=True, repr=False)
class Choose(FrameStep):
    """Give each row one of several named values, picked at random but fixed by the seed."""

    options: Mapping[str, str] = field(hash=False)
    into: str
    key_into: str | None
    seed: int = 0
    name: str = "choose"

    @property
    def contract(self) -> Contract:
        adds = (self.into,) if self.key_into is None else (self.into, self.key_into)
        return Contract(adds=adds)

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import polars as pl

        names = sorted(self.options)
        # A seeded hash of the row's text, so the pick never depends on row order or timing.
        content = [c for c in frame.columns if c not in BOOKKEEPING_COLUMNS]
        picks = [
            int(hashlib.sha256(f"{self.seed}\x1f{row}".encode()).hexdigest(), 16) % len(names)
            for row in frame.select(content).iter_rows()
        ]
        keys = [names[i] for i in picks]
        columns = [pl.Series(self.into, [self.options[k] for k in keys], dtype=pl.String)]
        if self.key_into is not None:
            columns.append(pl.Series(self.key_into, keys, dtype=pl.String))
        return frame.with_columns(columns)


def chat_turn(role: str, content: pl.Expr) -> pl.Expr:
    """One ``{role, content}`` struct of a chat."""
    import polars as pl

    return pl.struct(pl.lit(role).alias("role"), content.alias("content"))


@dataclass(frozen=True, repr=False)
class Conversation(FrameStep):
    """Gather system, user and assistant columns into a list of role/content structs."""

    user: str
    assistant: str
    system: str | None
    into: str
    name: str = "conversation"

    @property
    def contract(self) -> Contract:
        optional = frozenset({self.system}) if self.system else frozenset()
        return Contract(
            needs=frozenset({self.user, self.assistant}), optional=optional, adds=(self.into,)
        )

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import polars as pl

        turns = [
            chat_turn("user", pl.col(self.user)),
            chat_turn("assistant", pl.col(self.assistant)),
        ]
        if self.system and self.system in frame.columns:
            turns.insert(0, chat_turn("system", pl.col(self.system)))
        messages = pl.concat_list(turns)
        # A row without a response has no conversation, rather than a half one.
        complete = pl.col(self.user).is_not_null() & pl.col(self.assistant).is_not_null()
        return frame.with_columns(pl.when(complete).then(messages).alias(self.into))


@dataclass(frozen=True, repr=False)
class Unnest(FrameStep):
    """Spread a struct column into one column per field."""

    column: str
    fields: tuple[str, ...]
    name: str = "unnest"

    @property
    def contract(self) -> Contract:
        return Contract(
            needs=frozenset({self.column}), adds=self.fields, removes=frozenset({self.column})
        )

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.unnest(self.column)


def unnest(column: str, *, fields: tuple[str, ...]) -> Unnest:
    """Replace the struct column *column* by its *fields* (named, so ``>>`` can check them)."""
    return Unnest(column, fields)


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


def choose(
    options: str | Mapping[str, str],
    *,
    into: str,
    key_into: str | None = None,
    seed: int = 0,
) -> Choose:
    """Add column *into*: one of *options* per row (seeded), its name in *key_into*.

    A plain string gives every row that value.
    """
    if isinstance(options, str):
        return Choose({"default": options}, into, None, seed)
    if not options:
        message = "choose needs at least one option"
        raise ValueError(message)
    return Choose(dict(options), into, key_into, seed)


def conversation(
    *, user: str, assistant: str, system: str | None = None, into: str = "conversation"
) -> Conversation:
    """Add *into*: the chat as a list of ``{role, content}`` structs (system if present)."""
    return Conversation(user, assistant, system, into)


PAPER_BLOCKED_WORDS = (
    "image", "images", "graph", "graphs", "picture", "pictures",
    "file", "files", "map", "maps", "draw", "plot", "go to",
)  # fmt: skip
"""Words the Self-Instruct paper filters out: tasks a text model cannot do."""


def filter_keywords(
    column: str = "instruction", *, words: tuple[str, ...] = PAPER_BLOCKED_WORDS
) -> Filter:
    """Drop rows whose *column* contains any of *words* as a whole word (any case).

    >>> import polars as pl
    >>> frame = pl.DataFrame({"instruction": ["Draw a cat.", "Name a cat."]})
    >>> filter_keywords().run(frame)["instruction"].to_list()
    ['Name a cat.']
    """
    import re

    import polars as pl

    pattern = r"(?i)\b(" + "|".join(re.escape(w) for w in words) + r")\b"
    return Filter(~pl.col(column).str.contains(pattern), name="filter_keywords")


def filter_length(
    column: str = "instruction", *, min_words: int = 4, max_words: int = 150
) -> Filter:
    """Keep rows whose *column* has between *min_words* and *max_words* words (the paper: 4-150)."""
    import polars as pl

    words = (
        pl.col(column).str.split(" ").list.eval(pl.element().filter(pl.element() != "")).list.len()
    )
    return Filter(words.is_between(min_words, max_words), name="filter_length")
