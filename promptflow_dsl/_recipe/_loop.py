"""Combinators for iterative recipes: ``extend`` a frame with what a recipe makes from it,
and ``repeat_until`` a condition on the accumulated frame holds.

>>> import polars as pl
>>> from promptflow_dsl import choose, select
>>> grow = extend(select("n") >> choose("new", into="kind"))
>>> repeat_until(grow, until=lambda frame: frame.height >= 8, max_rounds=10).run(
...     pl.DataFrame({"n": [1, 2]})).height
8
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._engine._session import Session
from .._errors import PromptflowError
from ._recipe import Recipe
from ._round import in_round
from ._step import Contract, Step

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Extend", "RepeatUntil", "extend", "repeat_until", "walk"]


def walk(recipe: Recipe, within: str | None = None) -> Iterator[tuple[Step, str | None]]:
    """Every step in order with the loop it runs in, a loop's steps right after the loop."""
    for step in recipe.steps:
        yield step, within
        if isinstance(step, _Around):
            yield from walk(step.body, within=step.name)


def _as_recipe(body: Step | Recipe) -> Recipe:
    return body if isinstance(body, Recipe) else Recipe((body,))


@dataclass(frozen=True, repr=False)
class _Around(Step):
    """A step that runs a whole recipe inside it, and so reads and writes what it does."""

    body: Recipe
    row_wise = False

    @property
    def contract(self) -> Contract:
        return Contract(
            needs=frozenset(self.body.required_columns), adds=self.body.produced_columns
        )

    @property
    def calls_models(self) -> bool:  # type: ignore[override]
        return self.body.calls_models


@dataclass(frozen=True, repr=False)
class Extend(_Around):
    """Append to the frame the rows that *body* makes from it."""

    name: str = "extend"

    async def apply(self, frame: pl.DataFrame, session: Session) -> pl.DataFrame:
        import polars as pl

        made = await self.body.apply(frame, session)
        return pl.concat([frame, made], how="diagonal_relaxed")


@dataclass(frozen=True, repr=False)
class RepeatUntil(_Around):
    """Apply *body* to the frame round after round until *until(frame)* is true."""

    until: Callable[[pl.DataFrame], bool] = field(hash=False, compare=False)
    max_rounds: int = 100
    name: str = "repeat_until"

    async def apply(self, frame: pl.DataFrame, session: Session) -> pl.DataFrame:
        for round_ in range(self.max_rounds):
            if self.until(frame):
                return frame
            with in_round(round_):
                frame = await self.body.apply(frame, session)
        if not self.until(frame):
            reason = f"{self.name}: the condition did not hold after {self.max_rounds} rounds"
            session.stopped_because = reason
        return frame


def extend(body: Step | Recipe) -> Extend:
    """A step that appends to the frame the rows *body* makes from it."""
    return Extend(_as_recipe(body))


def repeat_until(
    body: Step | Recipe, *, until: Callable[[pl.DataFrame], bool], max_rounds: int = 100
) -> RepeatUntil:
    """Apply *body* (frame to frame) until *until* holds on the accumulated frame.

    Each round runs as its round number (see ``_round``), so seeded steps inside
    (sampling) draw anew each round and the same again when a stopped run is resumed
    from the cache.
    """
    if max_rounds < 1:
        message = "repeat_until needs max_rounds >= 1"
        raise PromptflowError(message)
    return RepeatUntil(_as_recipe(body), until, max_rounds)
