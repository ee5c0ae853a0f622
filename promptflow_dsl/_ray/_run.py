"""ClusterRun: a recipe applied to a Ray Dataset, with the guarantees of one machine.

``recipe.run(dataset)`` with a ``ray.data.Dataset`` lands here. The recipe's steps run in
``map_batches`` over a fixed pool of :class:`~._worker.RecipeWorker` actors; the run's
shared state lives in a coordinator, one limits actor per model and a cache actor, all
started on the driver's node and held by the returned Dataset (they go when it does).
A step that needs every row at once is refused before anything runs.

The Dataset is lazy, as every Ray Dataset is: calls are made when it is consumed
(``write_parquet``, ``take_all``, ``iter_batches``...), and consuming it again answers
from the cache. What is refused is refused at once, without Ray:

>>> from promptflow_dsl import dedup_exact, explode, self_instruct
>>> refuse_on_ray(self_instruct.step() >> explode("instructions", into="instruction"), "mock")
>>> refuse_on_ray(self_instruct.step() >> dedup_exact("instructions"), "mock")
Traceback (most recent call last):
...
promptflow_dsl._errors.EngineError: step 'dedup_exact' needs every row at once, which ...
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._engine._cache import ReplyCache, default_cache_path
from .._engine._interpreter import DEFAULT_RETRY, RetryPolicy
from .._errors import EngineError, PromptflowError
from .._model import Model
from .._recipe._recipe import Recipe
from .._secrets import is_secret_name
from ._cache import start_cache_server
from ._coordinator import start_coordinator
from ._worker import RecipeWorker, WorkerSettings

if TYPE_CHECKING:
    import ray.data

__all__ = [
    "ClusterRun",
    "credentials_from_environment",
    "original_error",
    "refuse_on_ray",
    "require_ray",
    "run_on_ray",
]

DEFAULT_WORKERS = 2
DEFAULT_CPUS_PER_WORKER = 0.5
TASKS_PER_WORKER = 4
WAIT_FOR_WORKERS_S = 600


def refuse_on_ray(recipe: Recipe, model: str | Model | None, *, batch: object = False) -> None:
    """Raise :class:`EngineError` for what the Ray engine does not run: a step that needs
    every row at once, or batch mode (a provider's batch does the work; run it on one
    machine)."""
    default = Model.coerce(model) if model is not None else None
    models = [m or default for m in recipe.step_models]
    if batch or any(m is not None and m.batch for m in models):
        message = (
            "batch mode runs on one machine (the provider's batch API does the work, and a "
            "run waits for it): leave out the Ray engine, or the batch setting"
        )
        raise EngineError(message)
    for step in recipe.steps:
        if not step.row_wise:
            message = (
                f"step {step.name!r} needs every row at once, which the Ray engine does not "
                "gather: run the steps before it on Ray, then this step on one machine"
            )
            raise EngineError(message, step=step.name)


def _cache_path(cache: bool | str | Path | ReplyCache) -> Path | None:  # noqa: FBT001
    if cache is False:
        return None
    if isinstance(cache, ReplyCache):
        return cache.path
    path = default_cache_path() if cache is True else Path(cache)
    return path.expanduser().resolve()


class ClusterRun:
    """One run of a recipe on Ray: its shared actors and the Dataset it makes.

    ``workers`` actors each keep up to ``max_concurrency`` calls in flight and reserve
    ``cpus_per_worker`` of a node's CPUs. The other options are :class:`RunOptions`'.
    """

    def __init__(  # noqa: PLR0913 - the run options, spelled out
        self,
        recipe: Recipe,
        *,
        model: str | Model | None = None,
        max_concurrency: int = 16,
        on_error: Literal["record", "raise"] = "record",
        cache: bool | str | Path | ReplyCache = True,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_cost_usd: float | None = None,
        workers: int | None = None,
        cpus_per_worker: float | None = None,
        progress: bool | None = None,
        batch: object = False,
    ) -> None:
        refuse_on_ray(recipe, model, batch=batch)
        self.recipe = recipe
        self.workers = DEFAULT_WORKERS if workers is None else workers
        self.cpus_per_worker = (
            DEFAULT_CPUS_PER_WORKER if cpus_per_worker is None else cpus_per_worker
        )
        if self.workers < 1 or self.cpus_per_worker < 0:
            message = (
                f"workers={self.workers} and cpus_per_worker={self.cpus_per_worker}: "
                "a run needs at least one worker, and no negative share of a CPU"
            )
            raise EngineError(message)
        self.max_concurrency = max_concurrency
        self.coordinator = start_coordinator(max_cost_usd)
        path = _cache_path(cache) if recipe.calls_models else None
        self.settings = WorkerSettings(
            coordinator=self.coordinator,
            cache_server=start_cache_server(path) if path is not None else None,
            cache_path=path,
            model=Model.coerce(model) if model is not None else None,
            max_concurrency=max_concurrency,
            on_error=on_error,
            retry=retry,
            max_cost_usd=max_cost_usd,
        )

    def _start_limits(self) -> None:
        """Start the limits actor of every model the steps call, while the workers start
        (an actor takes seconds to come up; the first call should not wait for it)."""
        for step in self.recipe.steps:
            chosen = getattr(step, "model", None) or self.settings.model
            if isinstance(chosen, Model) and step.calls_models and not chosen.is_offline:
                key = (chosen.name, chosen.api_base, chosen.rpm, chosen.tpm)
                self.coordinator.limits_for.remote(key)

    def apply(self, dataset: ray.data.Dataset) -> ray.data.Dataset:
        """The recipe over *dataset*: a lazy Dataset of the output rows (in no set order).

        The input's columns are checked first, as on one machine.
        """
        import ray.data

        self.recipe.check(dataset.columns() or [])
        self._start_limits()
        rows = max(1, self.max_concurrency)  # a batch fills one worker's calls in flight
        context = dataset.context  # shared with the Datasets derived from it
        if context.wait_for_min_actors_s <= 0:
            # Rows go out once every worker is up (the first one up would take them all),
            # and a cluster too small for the pool says so instead of waiting forever.
            context.wait_for_min_actors_s = WAIT_FOR_WORKERS_S
        return dataset.repartition(target_num_rows_per_block=rows).map_batches(
            RecipeWorker,
            fn_constructor_args=(self.recipe.steps, self.settings),
            # Batches of several tasks share the worker's session and its calls in flight.
            # Ray Data restarts a killed worker (max_restarts=-1 is its default for actor
            # pools) and sends it the batches it had not finished.
            compute=ray.data.ActorPoolStrategy(
                size=self.workers, max_concurrent_calls_per_actor=TASKS_PER_WORKER
            ),
            batch_size=rows,
            batch_format="pyarrow",
            num_cpus=self.cpus_per_worker,
            runtime_env={"env_vars": credentials_from_environment()},
        )

    def totals(self) -> dict[str, float]:
        """Calls, cache hits, tokens and dollars of every worker so far."""
        import ray

        totals: dict[str, float] = ray.get(self.coordinator.totals.remote())
        return totals

    def workers_joined(self) -> int:
        """How many workers started (a restarted one counts once)."""
        import ray

        return int(ray.get(self.coordinator.workers.remote()))

    def failure(self, raised: BaseException) -> BaseException:
        """What to tell the user of *raised*, an error Ray raised while the Dataset ran: the
        library's own error that stopped a worker, if one did."""
        import ray

        stopped: BaseException | None = ray.get(self.coordinator.failure.remote())
        return stopped if stopped is not None else original_error(raised)

    def stopped(self) -> str | None:
        """Why the run stopped issuing calls (its budget), if it did."""
        import ray

        reason: str | None = ray.get(self.coordinator.exhausted.remote())
        return reason


def credentials_from_environment() -> dict[str, str]:
    """The driver's environment variables whose names mark a credential (``OPENAI_API_KEY``,
    ``HF_TOKEN``...): the workers need the provider keys, and on another node, or in a
    cluster that was started elsewhere, they do not have the driver's environment."""
    return {name: value for name, value in os.environ.items() if is_secret_name(name)}


def require_ray() -> None:
    """Raise :class:`EngineError`, saying how to install it, where Ray is missing."""
    try:
        import ray.data  # noqa: F401
    except ImportError:
        message = "the Ray engine needs the ray extra: pip install 'promptflow_dsl[ray]'"
        raise EngineError(message) from None


def run_on_ray(recipe: Recipe, dataset: Any, **options: Any) -> ray.data.Dataset:
    """``recipe.run(dataset)`` for a Ray Dataset: the output, a lazy Ray Dataset."""
    require_ray()
    return ClusterRun(recipe, **options).apply(dataset)


def original_error(error: BaseException) -> BaseException:
    """The library's own error inside what Ray raised, if there is one, else *error*.

    Ray wraps a worker's exception (``RayTaskError``, Ray Data's ``UserCodeException``);
    the library's error says what went wrong in the user's terms.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        wrapped = getattr(current, "cause", None)  # Ray's wrapper: look inside it
        if isinstance(wrapped, BaseException):
            pending.append(wrapped)
        elif isinstance(current, PromptflowError):
            return current
        else:
            pending.extend((current.__context__, current.__cause__))
    return error
