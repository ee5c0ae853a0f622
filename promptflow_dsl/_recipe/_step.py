"""Step: one stage of a recipe, with a column contract that ``>>`` checks before anything runs."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .._engine._cache import ReplyCache
from .._engine._interpreter import DEFAULT_RETRY, RetryPolicy
from .._engine._types import Usage
from .._model import Model

if TYPE_CHECKING:
    import polars as pl

    from ._recipe import Recipe

__all__ = ["Contract", "RunContext", "Step"]

S = TypeVar("S", bound="Step")


@dataclass(frozen=True)
class Contract:
    """The columns a step reads, adds and removes.

    ``needs`` must exist; ``optional`` are read when present; ``keeps_only`` (for
    ``select``) drops every column not listed.
    """

    needs: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    adds: tuple[str, ...] = ()
    removes: frozenset[str] = frozenset()
    keeps_only: tuple[str, ...] | None = None


@dataclass
class RunContext:
    """What a run gives every step: the default model, the limits and the running totals."""

    model: Model | None = None
    max_concurrency: int = 16
    on_error: str = "record"
    progress: bool | None = None
    cache: ReplyCache | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    totals: dict[str, float] = field(default_factory=dict)

    def record(self, usage: Usage) -> None:
        """Add one completed call's usage to the run's totals."""
        for key, amount in (
            ("calls", usage.attempts),
            ("cache_hits", int(usage.cache_hit)),
            ("input_tokens", 0 if usage.cache_hit else usage.input_tokens or 0),
            ("output_tokens", 0 if usage.cache_hit else usage.output_tokens or 0),
            ("cost_usd", usage.cost_usd or 0.0),
        ):
            self.totals[key] = self.totals.get(key, 0) + amount


class Step(ABC):
    """A recipe stage. Subclasses are frozen dataclasses with a ``name`` field."""

    name: str

    @property
    @abstractmethod
    def contract(self) -> Contract:
        """The columns this step reads, adds and removes."""

    @abstractmethod
    async def apply(self, frame: pl.DataFrame, run: RunContext) -> pl.DataFrame:
        """Transform the frame. Must not mutate its input."""

    def named(self: S, name: str) -> S:
        """The same step under another name (shown in reprs, progress and errors)."""
        return dataclasses.replace(self, name=name)  # type: ignore[type-var]

    def then(self, other: Step | Recipe) -> Recipe:
        """A recipe of this step followed by *other*. ``a >> b`` is ``a.then(b)``."""
        from ._recipe import Recipe

        return Recipe((self,)).then(other)

    __rshift__ = then

    def run(self, frame: Any, **options: Any) -> pl.DataFrame:
        """Run this step alone, as a one-step recipe (see :meth:`Recipe.run`)."""
        from ._recipe import Recipe

        return Recipe((self,)).run(frame, **options)

    def __repr__(self) -> str:
        return self.name
