"""RecipeWorker: the actor that runs a recipe's steps over Ray Data batches.

Ray Data calls it with one batch at a time (``map_batches`` over an actor pool; its
``__call__`` is an async generator, so several batches share one event loop). Each worker
runs the engine's own :class:`Session`: cache, retries, per-row failures, streaming from
step to step, ``max_concurrency`` calls in flight. What must hold across workers goes
through the run's actors instead: the sample numbering and the budget (the coordinator),
each model's limits (one actor per model), and the reply cache (the cache actor).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from .._engine._interpreter import DEFAULT_RETRY, RetryPolicy
from .._engine._limits import ModelLimiter, share_limiters
from .._engine._session import Session
from .._errors import PromptflowError
from .._model import Model
from .._recipe._recipe import Recipe
from .._recipe._step import Step
from ._account import SharedAccount
from ._cache import SharedCache
from ._limits import SharedLimiter

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ClusterSession", "RecipeWorker", "WorkerSettings"]


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker of a run is told: the run's options, and where its actors are."""

    coordinator: Any
    cache_server: Any = None
    cache_path: Path | None = None
    model: Model | None = None
    max_concurrency: int = 16
    on_error: Literal["record", "raise"] = "record"
    retry: RetryPolicy = DEFAULT_RETRY
    max_cost_usd: float | None = None


@dataclass
class ClusterSession(Session):
    """A session whose sample numbering is the run's: repeated prompts are distinct
    samples across workers, and a restarted worker's rows get their indices back."""

    coordinator: Any = None
    worker: str = ""

    def number_sample(self, prompt_key: str) -> int:
        """The sample index of the next occurrence of this prompt in the whole run."""
        import ray

        return int(ray.get(self.coordinator.number.remote(prompt_key, self.worker)))


class RecipeWorker:
    """Runs *steps* (all row-wise) over each batch, within this worker's session."""

    def __init__(self, steps: Sequence[Step], settings: WorkerSettings) -> None:
        import ray

        self._recipe = Recipe(tuple(steps))
        if self._recipe.calls_models:  # LiteLLM takes seconds to import: before any batch
            importlib.import_module("promptflow_dsl._engine._providers")
        self._coordinator = settings.coordinator
        context = ray.get_runtime_context()
        worker = context.get_actor_id() or "driver"
        # A restarted worker joins again, and gets back the sample indices it held.
        ray.get(self._coordinator.join.remote(worker, context.current_actor))
        self._account = SharedAccount(self._coordinator, max_cost_usd=settings.max_cost_usd)
        cache = None
        if settings.cache_server is not None and settings.cache_path is not None:
            cache = SharedCache(settings.cache_server, settings.cache_path)
        self._session = ClusterSession(
            model=settings.model,
            max_concurrency=settings.max_concurrency,
            on_error=settings.on_error,
            cache=cache,
            retry=settings.retry,
            account=self._account,
            coordinator=self._coordinator,
            worker=worker,
        )
        self._budget = settings.max_cost_usd is not None
        self._sharing = False

    async def __call__(self, batch: pa.Table) -> AsyncIterator[pa.Table]:
        """The batch through every step: the same rows and columns as on one machine."""
        import polars as pl
        import ray

        if not self._sharing:  # the first batch runs on the loop that every batch uses
            share_limiters(self._limiter)
            self._sharing = True
        frame = cast("pl.DataFrame", pl.from_arrow(batch))  # a table makes a frame
        try:
            out = await self._recipe.apply(frame, self._session)
        except PromptflowError as exc:  # it stops the run: the driver will say why
            ray.get(self._coordinator.fail.remote(exc))
            raise
        self._account.flush()  # the batch's spending is in the run's totals before it ends
        yield out.to_arrow()

    def _limiter(
        self, name: str, api_base: str | None, rpm: float | None, tpm: float | None
    ) -> ModelLimiter:
        """This model's limiter: turns from the model's limits actor, shared by all."""
        coordinator = self._coordinator

        async def resolve() -> Any:
            return await coordinator.limits_for.remote((name, api_base, rpm, tpm))

        # With a budget, the run's spending is fetched before every attempt.
        refresh = self._account.refresh if self._budget else None
        return SharedLimiter(rpm=rpm, tpm=tpm, resolve=resolve, before_send=refresh)
