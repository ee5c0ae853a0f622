"""Recipe: an immutable sequence of steps, composed with ``>>`` and applied to a Polars frame.

>>> from promptflow_dsl import explode, rename
>>> recipe = rename(text="document") >> explode("tags", into="tag")
>>> recipe
rename >> explode
>>> recipe.required_columns
{'text': 'rename', 'tags': 'explode'}
>>> import polars as pl
>>> recipe.run(pl.DataFrame({"text": ["a"], "tags": [["x", "y"]]}))
shape: (2, 2)
┌──────────┬─────┐
│ document ┆ tag │
│ ---      ┆ --- │
│ str      ┆ str │
╞══════════╪═════╡
│ a        ┆ x   │
│ a        ┆ y   │
└──────────┴─────┘
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict, cast, overload

from typing_extensions import Unpack

from .._engine._account import Account
from .._engine._batch import BatchOptions, tell_running_batches
from .._engine._cache import ReplyCache, open_cache
from .._engine._interpreter import DEFAULT_RETRY, RetryPolicy
from .._engine._progress import ProgressDisplay
from .._engine._session import Session
from .._errors import CompositionError, EngineError, MissingColumnError
from .._model import Model
from ._bookkeeping import normalise_bookkeeping
from ._step import Step
from ._stream import apply_steps, stream_frame

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa
    import ray.data

FrameLike: TypeAlias = "pl.DataFrame | pd.DataFrame | pa.Table | Sequence[Mapping[str, Any]]"
"""What a recipe runs on: a Polars, pandas or pyarrow frame, or a list of dicts."""

Output: TypeAlias = Literal["polars", "same"]
"""What ``run`` returns: a Polars frame, or the same kind of frame that came in."""

__all__ = ["Recipe", "RunOptions", "RunResult", "RunSummary"]


@dataclass(frozen=True)
class _Plan:
    required: dict[str, str]  # input column -> the first step that reads it
    produced: tuple[str, ...]  # columns the recipe is known to output (besides kept input)


def _plan(steps: Sequence[Step]) -> _Plan:
    required: dict[str, str] = {}
    available: dict[str, None] = {}  # ordered set
    removed: dict[str, str] = {}
    closed = False  # after a select, no unknown input column survives
    for step in steps:
        contract = step.contract
        for column in sorted(contract.needs):
            if column in available:
                continue
            if column in removed:
                message = (
                    f"step {step.name!r} needs column {column!r}, "
                    f"which step {removed[column]!r} removed earlier"
                )
                raise CompositionError(message, step=step.name, column=column)
            if closed:
                message = (
                    f"step {step.name!r} needs column {column!r}, which is not among the "
                    f"columns kept by an earlier select: {list(available)}"
                )
                raise CompositionError(message, step=step.name, column=column)
            required[column] = step.name
            available[column] = None
        if contract.keeps_only is not None:
            for column in available:
                if column not in contract.keeps_only:
                    removed[column] = step.name
            available = dict.fromkeys(contract.keeps_only)
            closed = True
        for column in contract.removes:
            available.pop(column, None)
            removed[column] = step.name
        for column in contract.adds:
            available[column] = None
            removed.pop(column, None)
    return _Plan(required, tuple(available))


def as_frame(rows: Any) -> pl.DataFrame:
    """A Polars frame from a Polars, pandas or pyarrow frame, a list of dicts, or anything
    with ``to_polars()`` (a Hugging Face ``datasets.Dataset``, say).

    A pandas index is dropped unless it has a name; a named index becomes a column.
    """
    import polars as pl

    if isinstance(rows, pl.DataFrame):
        return rows
    library = _library_of(rows)
    if library == "pandas":
        named_index = any(name is not None for name in rows.index.names)
        return _one_frame(pl.from_pandas(rows, include_index=named_index))
    if library == "pyarrow":
        return _one_frame(pl.from_arrow(rows))
    if hasattr(rows, "to_polars"):
        return cast("pl.DataFrame", rows.to_polars())
    return pl.DataFrame(list(rows))


def _one_frame(converted: pl.DataFrame | pl.Series) -> pl.DataFrame:
    """A frame, also from a pandas series or a pyarrow array (one column, of its name)."""
    import polars as pl

    return converted.to_frame() if isinstance(converted, pl.Series) else converted


def _library_of(rows: object) -> str:
    """The top-level package that defines the type of *rows* (``"pandas"``, ``"pyarrow"``...).

    Read from the type's module, so that telling a pandas frame apart imports no pandas.
    """
    return type(rows).__module__.partition(".")[0]


def as_kind_of(frame: pl.DataFrame, rows: object) -> Any:
    """*frame* as the same kind of frame as *rows*: pandas for pandas, pyarrow for pyarrow,
    Polars otherwise."""
    library = _library_of(rows)
    if library == "pandas":
        return _to_pandas(frame)
    if library == "pyarrow":
        return frame.to_arrow()
    return frame


def _to_pandas(frame: pl.DataFrame) -> Any:
    """*frame* as a pandas frame whose nested cells are Python lists and dicts.

    pyarrow's own conversion gives numpy arrays for list cells; a pandas user expects lists.
    """
    import pandas as pd

    converted = frame.to_pandas()
    for name, dtype in frame.schema.items():
        if dtype.is_nested():
            converted[name] = pd.Series(frame[name].to_list(), dtype=object)
    return converted


@dataclass(frozen=True)
class RunSummary:
    """Totals of one run: rows, failures, calls, tokens, dollars and time."""

    rows_in: int
    rows_out: int
    failures: int
    calls: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    elapsed_s: float
    stopped: str | None = None

    @classmethod
    def of(
        cls, session: Session, rows_in: int, rows_out: int, failures: int, elapsed: float
    ) -> RunSummary:
        """The summary of a run from its session's totals."""
        summary = cls(rows_in, rows_out, failures, 0, 0, 0, 0, 0.0, elapsed, session.stopped)
        return summary.with_usage(session.totals)

    def with_usage(self, totals: Mapping[str, float]) -> RunSummary:
        """The same summary with these calls, cache hits, tokens and dollars."""
        return dataclasses.replace(
            self,
            calls=int(totals.get("calls", 0)),
            cache_hits=int(totals.get("cache_hits", 0)),
            input_tokens=int(totals.get("input_tokens", 0)),
            output_tokens=int(totals.get("output_tokens", 0)),
            cost_usd=float(totals.get("cost_usd", 0.0)),
        )

    def __str__(self) -> str:
        return (
            f"{self.rows_in} rows in, {self.rows_out} out, {self.failures} failed; "
            f"{self.calls} calls, {self.cache_hits} cached; "
            f"{self.input_tokens} tokens in, {self.output_tokens} out, "
            f"${self.cost_usd:.4f}; {self.elapsed_s:.1f} s"
            + (f"; stopped: {self.stopped}" if self.stopped else "")
        )


@dataclass(frozen=True)
class RunResult:
    """The output frame and the run's summary."""

    frame: pl.DataFrame
    summary: RunSummary


class RunOptions(TypedDict, total=False):
    """How a recipe runs; every option may be left out.

    ``model``: the model of the steps without their own. ``max_concurrency``: calls in
    flight (16). ``on_error``: ``"record"`` keeps a failed row with its reason and goes on,
    ``"raise"`` stops at the first. ``progress``: ``None`` shows progress where it can be
    seen (a bar on a terminal, a line in a notebook, a log line every few seconds
    elsewhere). ``cache``: True the default on-disk cache, False none, a path that file, or
    a :class:`ReplyCache`. ``retry``: a :class:`RetryPolicy`. ``max_cost_usd``: checked
    before every call; once spent, no new call is issued and the rows left say why.
    ``batch``: True sends every model's calls through its provider's batch API (half the
    price, answers within a day), or :class:`BatchOptions` to say how batches are gathered
    and watched; ``Model(batch=True)`` does it for one model.

    On a ``ray.data.Dataset`` (the Ray engine) two more apply: ``workers``, the actors that
    run the steps (2), each with ``max_concurrency`` calls in flight; ``cpus_per_worker``,
    the share of a CPU each reserves (0.5). The limits and the budget hold for the whole
    run, across workers.
    """

    model: str | Model | None
    max_concurrency: int
    on_error: Literal["record", "raise"]
    progress: bool | None
    cache: bool | str | Path | ReplyCache
    retry: RetryPolicy
    max_cost_usd: float | None
    batch: bool | BatchOptions
    workers: int | None
    cpus_per_worker: float | None


@dataclass(frozen=True, repr=False)
class Recipe:
    """Steps in order. Composition checks the columns; running checks the input frame."""

    steps: tuple[Step, ...] = ()
    _plan: _Plan = field(init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_plan", _plan(self.steps))

    def then(self, other: Step | Recipe) -> Recipe:
        """This recipe followed by a step or another recipe (flattened)."""
        more = other.steps if isinstance(other, Recipe) else (other,)
        return Recipe(self.steps + more)

    __rshift__ = then

    def __repr__(self) -> str:
        return " >> ".join(step.name for step in self.steps) or "Recipe()"

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def required_columns(self) -> dict[str, str]:
        """The columns the input frame must have, each with the step that first reads it."""
        return dict(self._plan.required)

    @property
    def produced_columns(self) -> tuple[str, ...]:
        """The columns the recipe is known to output (input columns may be kept as well)."""
        return self._plan.produced

    def check(self, columns: Iterable[str]) -> None:
        """Raise :class:`MissingColumnError` if the input lacks a column the recipe reads."""
        existing = list(columns)
        for column, step in self._plan.required.items():
            if column not in existing:
                raise MissingColumnError(step=step, column=column, existing=existing)

    async def aexecute(self, frame: FrameLike, **options: Unpack[RunOptions]) -> RunResult:
        """Run the recipe and return the output frame with the run's summary.

        The options are :class:`RunOptions`' (typed, all optional).
        """
        return await self._execute(frame, **options)

    async def _execute(
        self,
        frame: FrameLike,
        *,
        model: str | Model | None = None,
        max_concurrency: int = 16,
        on_error: Literal["record", "raise"] = "record",
        progress: bool | None = None,
        cache: bool | str | Path | ReplyCache = True,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_cost_usd: float | None = None,
        batch: bool | BatchOptions = False,
        workers: int | None = None,
        cpus_per_worker: float | None = None,
    ) -> RunResult:
        _refuse_cluster(frame, workers, cpus_per_worker)
        frame = as_frame(frame)
        self.check(frame.columns)
        with ProgressDisplay(enabled=progress if self.calls_models else False) as display:
            session = Session(
                model=Model.coerce(model) if model is not None else None,
                max_concurrency=max_concurrency,
                on_error=on_error,
                cache=open_cache(cache) if self.calls_models else None,  # frames only: none
                retry=retry,
                account=Account(max_cost_usd=max_cost_usd),
                display=display,
                batch=batch is not False,
                batch_options=batch if isinstance(batch, BatchOptions) else BatchOptions(),
            )
            session.check_models(self.step_models)  # before any call
            started = time.perf_counter()
            try:
                out = await self.apply(frame, session)
            finally:
                again = "run the same recipe again with the same cache" if session.cache else None
                tell_running_batches(await session.aclose(), again)
        failures = int(out["error"].is_not_null().sum()) if "error" in out.columns else 0
        summary = RunSummary.of(
            session, frame.height, out.height, failures, time.perf_counter() - started
        )
        return RunResult(out, summary)

    async def apply(self, frame: pl.DataFrame, session: Session) -> pl.DataFrame:
        """Apply every step in order within an existing run.

        Where two or more model steps follow each other with only row-wise steps between,
        rows stream: each goes on to its next step as soon as its previous one is done.
        """
        frame = normalise_bookkeeping(frame)  # an earlier run's output, read back from a file
        for steps in _segments(self.steps):
            if sum(step.calls_models for step in steps) > 1:
                frame = await stream_frame(steps, frame, session)
            else:
                frame = await apply_steps(steps, frame, session)
        return frame

    @property
    def row_wise(self) -> bool:
        """True if every row's output depends on that row alone, so chunks give the same result."""
        return all(step.row_wise for step in self.steps)

    @property
    def step_models(self) -> list[Model | None]:
        """The model of each technique step (None: the run's model)."""
        from ._llm_step import TechniqueStep

        return [step.model for step in self.steps if isinstance(step, TechniqueStep)]

    @property
    def calls_models(self) -> bool:
        """True if any step calls a model."""
        return any(step.calls_models for step in self.steps)

    def execute(self, frame: FrameLike, **options: Unpack[RunOptions]) -> RunResult:
        """Sync :meth:`aexecute`; works inside a running event loop too.

        A recipe that calls no model runs right here: no event loop, thread or cache.
        """
        from .._engine._portal import run_now, run_sync

        run = run_sync if self.calls_models else run_now
        return run(self.aexecute(frame, **options))

    @overload
    async def arun(
        self,
        frame: FrameLike,
        *,
        output: Literal["polars"] = ...,
        **options: Unpack[RunOptions],
    ) -> pl.DataFrame: ...
    @overload
    async def arun(
        self, frame: FrameLike, *, output: Output, **options: Unpack[RunOptions]
    ) -> Any: ...
    @overload
    async def arun(
        self, frame: ray.data.Dataset, *, output: Output = ..., **options: Unpack[RunOptions]
    ) -> ray.data.Dataset: ...

    async def arun(
        self,
        frame: FrameLike | ray.data.Dataset,
        *,
        output: Output = "polars",
        **options: Unpack[RunOptions],
    ) -> Any:
        """Run the recipe and return the output frame (async; see :meth:`run`)."""
        _check_output(output)
        if _library_of(frame) == "ray":
            return _on_ray(self, frame, options)
        result = await self.aexecute(frame, **options)
        return _as_output(result.frame, frame, output)

    @overload
    def run(
        self,
        frame: FrameLike,
        *,
        output: Literal["polars"] = ...,
        **options: Unpack[RunOptions],
    ) -> pl.DataFrame: ...
    @overload
    def run(self, frame: FrameLike, *, output: Output, **options: Unpack[RunOptions]) -> Any: ...
    @overload
    def run(
        self, frame: ray.data.Dataset, *, output: Output = ..., **options: Unpack[RunOptions]
    ) -> ray.data.Dataset: ...

    def run(
        self,
        frame: FrameLike | ray.data.Dataset,
        *,
        output: Output = "polars",
        **options: Unpack[RunOptions],
    ) -> Any:
        """Run the recipe and return the output frame.

        ``output``: ``"polars"`` returns a Polars frame; ``"same"`` returns the kind that
        came in (a pandas frame for a pandas frame, a pyarrow table for a pyarrow table).

        A ``ray.data.Dataset`` runs on Ray (the ``ray`` extra) and returns a lazy Dataset:
        technique steps run in a pool of ``workers`` actors, with the limits, the budget and
        the cache shared by all of them (see the "Running on a cluster" page).

        The options are :class:`RunOptions`' (typed, all optional).
        """
        _check_output(output)
        if _library_of(frame) == "ray":
            return _on_ray(self, frame, options)
        return _as_output(self.execute(frame, **options).frame, frame, output)


def _on_ray(recipe: Recipe, dataset: Any, options: RunOptions) -> Any:
    """The recipe over a Ray Dataset, on the Ray engine."""
    from .._ray._run import run_on_ray

    return run_on_ray(recipe, dataset, **options)


def _refuse_cluster(frame: object, workers: int | None, cpus_per_worker: float | None) -> None:
    """Refuse a Ray Dataset or the Ray engine's options in a run that returns one frame."""
    if _library_of(frame) == "ray":
        message = (
            "execute() returns one Polars frame; a ray.data.Dataset runs with run() or "
            "arun(), which return a Dataset (or `promptflow run --engine ray`, which prints "
            "the summary)"
        )
        raise EngineError(message)
    if workers is not None or cpus_per_worker is not None:
        message = (
            "workers= and cpus_per_worker= are options of the Ray engine: pass a "
            "ray.data.Dataset to run()"
        )
        raise EngineError(message)


def _segments(steps: Sequence[Step]) -> list[tuple[Step, ...]]:
    """*steps* cut into runs of row-wise steps, each whole-frame step a run of its own."""
    segments: list[tuple[Step, ...]] = []
    for step in steps:
        if step.row_wise and segments and segments[-1][-1].row_wise:
            segments[-1] = (*segments[-1], step)
        else:
            segments.append((step,))
    return segments


def _check_output(output: str) -> None:
    """Refuse an unknown ``output`` before anything runs, so no call is spent on it."""
    if output not in ("polars", "same"):
        message = f"Recipe.run: output={output!r} is not known; use 'polars' or 'same'"
        raise ValueError(message)


def _as_output(frame: pl.DataFrame, rows: object, output: Output) -> Any:
    """The output frame in the kind asked for: Polars, or the kind of the input *rows*."""
    return as_kind_of(frame, rows) if output == "same" else frame
