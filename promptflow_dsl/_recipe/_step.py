"""Step: one stage of a recipe, with a column contract that ``>>`` checks before anything runs.

A :class:`FrameStep` is a plain synchronous function over a frame (``transform``); a
step that calls models is applied within the run's :class:`Session`, which owns every call.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .._engine._session import Session

if TYPE_CHECKING:
    import polars as pl
    from typing_extensions import Unpack

    from ._recipe import Recipe, RunOptions, RunResult

__all__ = ["BOOKKEEPING_COLUMNS", "Contract", "FrameStep", "Session", "Step"]

BOOKKEEPING_COLUMNS = {
    "model_name": ("String", "The model that produced the row (the offline model says so)."),
    "usage": ("Struct", "Tokens in and out, cost in dollars, latency, attempts, cache hit."),
    "error": ("Struct", "Null, or why the row failed: step, type, message, attempts, raw reply."),
    "notes": ("List(String)", "Null, or what a row that did not fail should say: a short list."),
}
"""The columns every technique step writes besides its result fields: dtype, meaning."""

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


class Step(ABC):
    """A recipe stage. Subclasses are frozen dataclasses with a ``name`` field."""

    name: str
    row_wise: bool = True
    """True if each output row depends on its input row alone (chunking changes nothing)."""
    calls_models: bool = False
    """True if the step calls a model (so a run needs the engine: cache, slots, portal)."""

    @property
    def batched(self) -> bool:
        """True if the step's own model sends its calls through a batch API."""
        return False

    @property
    @abstractmethod
    def contract(self) -> Contract:
        """The columns this step reads, adds and removes."""

    @abstractmethod
    async def apply(self, frame: pl.DataFrame, session: Session) -> pl.DataFrame:
        """Transform the frame within the run's *session*. Must not mutate its input."""

    def named(self: S, name: str) -> S:
        """The same step under another name (shown in reprs, progress and errors)."""
        return cast(S, dataclasses.replace(cast(Any, self), name=name))

    def then(self, other: Step | Recipe) -> Recipe:
        """A recipe of this step followed by *other*. ``a >> b`` is ``a.then(b)``."""
        from ._recipe import Recipe

        return Recipe((self,)).then(other)

    __rshift__ = then

    def run(self, frame: Any, **options: Unpack[RunOptions]) -> pl.DataFrame:
        """Run this step alone, as a one-step recipe (see :meth:`Recipe.run`)."""
        from ._recipe import Recipe

        return Recipe((self,)).run(frame, **options)

    def execute(self, frame: Any, **options: Unpack[RunOptions]) -> RunResult:
        """Run this step alone; return the frame and the summary (see :meth:`Recipe.execute`)."""
        from ._recipe import Recipe

        return Recipe((self,)).execute(frame, **options)

    def __repr__(self) -> str:
        return self.name


class FrameStep(Step):
    """A step that calls no model: a synchronous function from frame to frame.

    Subclasses implement :meth:`transform`; a recipe made of frame steps alone runs right
    where it is called, with no event loop, thread or cache.
    """

    @abstractmethod
    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The frame this step makes of *frame*. Must not mutate its input."""

    async def apply(self, frame: pl.DataFrame, session: Session) -> pl.DataFrame:
        """:meth:`transform`; a frame step needs nothing of the session."""
        return self.transform(frame)
