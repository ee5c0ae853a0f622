"""TechniqueStep: a technique applied to every row, its inputs read from columns.

Each row's call runs under the run's in-flight limit. The result fields become typed
columns, plus ``model_name``, a ``usage`` struct and an ``error`` struct. A failed row keeps
its inputs, gets nulls in the result columns and records why in ``error``; a row that an
earlier step already failed is skipped and keeps that error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from .._engine._cache import cache_key
from .._engine._driver import add_usage, drive, single
from .._engine._executor import run_bounded
from .._engine._interpreter import interpret
from .._engine._run import RunContext
from .._engine._types import Completion, Usage
from .._errors import (
    InvalidReplyError,
    ModelSettingError,
    PromptflowError,
    RunAbortedError,
    StorageError,
)
from .._model import OFFLINE_MODEL, Model
from .._program import PromptProgram
from .._schema import polars_schema
from .._sized import size_notes
from ._step import BOOKKEEPING_COLUMNS, Contract, Step

if TYPE_CHECKING:
    import polars as pl

    from .._technique import Technique

__all__ = ["TechniqueStep", "error_dtype", "usage_dtype"]


def usage_dtype() -> pl.Struct:
    """The ``usage`` column: what each row's call cost."""
    import polars as pl

    return pl.Struct(
        {
            "input_tokens": pl.Int64,
            "output_tokens": pl.Int64,
            "cost_usd": pl.Float64,
            "latency_s": pl.Float64,
            "attempts": pl.Int64,
            "cache_hit": pl.Boolean,
            "tokens_estimated": pl.Boolean,
        }
    )


def error_dtype() -> pl.Struct:
    """The ``error`` column: null for a row that succeeded, else why it failed."""
    import polars as pl

    return pl.Struct(
        {
            "step": pl.String,
            "type": pl.String,
            "message": pl.String,
            "attempts": pl.Int64,
            "raw_reply": pl.String,
        }
    )


_TRAILING = tuple(BOOKKEEPING_COLUMNS)


OFFLINE = Model(OFFLINE_MODEL)
_REPEAT_STRIDE = 1_000_003  # sample indices of repeats within a row never meet other rows'
RUN_STOPPERS = (RunAbortedError, StorageError, ModelSettingError)  # end a run, not a row
_PROMPT_KEY_CHARS = 20  # 80 bits of the prompt's hash tell prompts apart for numbering


@dataclass(frozen=True)
class _RowCall:
    args: list[Any]
    kwargs: dict[str, Any]
    first: PromptProgram[Any]


@dataclass(frozen=True)
class _RowFailure:
    error: dict[str, Any]
    usage: Usage | None = None  # what the row's calls used before it failed


@dataclass(frozen=True, repr=False)
class TechniqueStep(Step):
    """A technique as a recipe step. Build it with ``technique.step(...)``."""

    technique: Technique[Any]
    attributes: Mapping[str, Any] = field(hash=False)
    columns: Mapping[str, str] = field(hash=False)  # technique input -> frame column
    model: Model | None = None
    name: str = ""
    max_concurrency: int | None = None
    calls_models = True

    def limited(self, max_concurrency: int | None) -> TechniqueStep:
        """The same step with its own cap on calls in flight (None: the run's)."""
        return dataclasses.replace(self, max_concurrency=max_concurrency)

    @classmethod
    def build(
        cls,
        technique: Technique[Any],
        *,
        model: str | Model | None,
        inputs: Mapping[str, str],
        attributes: Mapping[str, Any],
    ) -> TechniqueStep:
        """Check the attributes and the input mapping against the technique's signature."""
        unknown = sorted(set(attributes) - set(technique.attributes))
        if unknown:
            message = (
                f"{technique.name}.step() got unknown attributes {unknown}; "
                f"its attributes are {sorted(technique.attributes)}"
            )
            raise TypeError(message)
        not_inputs = sorted(set(inputs) - set(technique.inputs))
        if not_inputs:
            message = (
                f"{technique.name}.step(inputs=...) maps {not_inputs}, which are not inputs; "
                f"its inputs are {list(technique.inputs)}"
            )
            raise TypeError(message)
        checked = technique.check_attributes(attributes)  # types and ranges, before any run
        columns = {name: inputs.get(name, name) for name in technique.inputs}
        coerced = Model.coerce(model) if model is not None else None
        return cls(technique, checked, columns, coerced, technique.name)

    @property
    def contract(self) -> Contract:
        optional = self.technique.optional_inputs
        needs = {self.columns[p] for p in self.technique.inputs if p not in optional}
        needs |= self.technique.extra_columns(self.attributes)
        fields = self.technique.output_columns(self.attributes)
        return Contract(
            needs=frozenset(needs),
            optional=frozenset(self.columns[p] for p in optional),
            adds=(*fields, *_TRAILING),
        )

    def _arguments(self, row: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        inputs = [row.get(self.columns[p]) for p in self.technique.inputs]
        while (
            inputs
            and inputs[-1] is None
            and self.technique.inputs[len(inputs) - 1] in (self.technique.optional_inputs)
        ):
            inputs.pop()
        extra = {c: row[c] for c in self.technique.extra_columns(self.attributes)}
        return inputs, {**self.attributes, **extra}

    def _programs(
        self, frame: pl.DataFrame, earlier: list[Any]
    ) -> list[_RowCall | _RowFailure | None]:
        """Each row's call; None for a row an earlier step failed; a failure for bad input."""
        contract = self.contract
        read = [c for c in (*contract.needs, *contract.optional) if c in frame.columns]
        required = [self.columns[p] for p in self.technique.inputs if p not in contract.optional]
        programs: list[_RowCall | _RowFailure | None] = []
        for row, error in zip(frame.select(read).iter_rows(named=True), earlier, strict=True):
            missing = [c for c in required if row.get(c) is None]
            if error is not None:
                programs.append(None)
            elif missing:
                programs.append(
                    self._failure(f"input column {missing[0]!r} is null", "MissingInput", 0, None)
                )
            else:
                try:
                    args, kwargs = self._arguments(row)
                    first = self.technique.program(*args, **kwargs)
                    programs.append(_RowCall(args, kwargs, first))
                except PromptflowError as exc:
                    programs.append(self._failure(str(exc), type(exc).__name__, 0, None))
        return programs

    async def apply(self, frame: pl.DataFrame, run: RunContext) -> pl.DataFrame:
        model = self.model or run.model
        if model is None:
            message = f"step {self.name!r} has no model: pass model= to run() or to .step()"
            raise PromptflowError(message)
        earlier = frame["error"].to_list() if "error" in frame.columns else [None] * frame.height
        programs = self._programs(frame, earlier)
        samples = _sample_indices(programs, model, run) if run.cache is not None else None

        async def one(index: int) -> Completion[Any] | _RowFailure | None:
            planned = programs[index]
            if not isinstance(planned, _RowCall):
                return planned
            repeats: dict[str, int] = {}

            def call(program: PromptProgram[Any]) -> Awaitable[Completion[Any]]:
                if run.rehearsal is not None:  # a dry run: note the call, answer offline
                    run.rehearsal.record(self.name, model, program)
                    return interpret(program, OFFLINE)
                # A prompt repeated within one row is a new sample, not a cache hit.
                seen = repeats[program.text()] = repeats.get(program.text(), -1) + 1
                sample = (samples[index] if samples else 0) + _REPEAT_STRIDE * seen
                return interpret(
                    program,
                    model,
                    cache=run.cache,
                    sample=sample,
                    retry=run.retry,
                    account=run.account,
                    on_wait=run.display.waiting,
                )

            sequence = (
                self.technique.sequence(*planned.args, **planned.kwargs)
                if self.technique.is_sequence
                else single(planned.first)  # already built: no need to build it twice
            )
            completions: list[Completion[Any]] = []

            async def noted(program: PromptProgram[Any]) -> Completion[Any]:
                completions.append(await call(program))
                return completions[-1]

            try:
                async with run.call_slot(self.name, self.max_concurrency):
                    result = await drive(sequence, noted)
            except PromptflowError as exc:
                if run.on_error == "raise" or isinstance(exc, RUN_STOPPERS):
                    raise
                run.check_early_stop(exc)
                raw = exc.raw_text if isinstance(exc, InvalidReplyError) else None
                spent = [c.usage for c in completions] + ([exc.usage] if exc.usage else [])
                return self._failure(
                    str(exc), type(exc).__name__, exc.attempts, raw, usage=add_usage(spent)
                )
            run.check_early_stop(None)
            usage = add_usage([c.usage for c in completions])
            return Completion(result, completions[-1].raw_text, completions[-1].model_name, usage)

        bar = run.display.step(self.name)
        bar.add_total(frame.height)

        def tick(outcome: Completion[Any] | _RowFailure | None) -> None:
            usage = outcome.usage if isinstance(outcome, Completion) else None
            bar.advance(failed=isinstance(outcome, _RowFailure), usage=usage)

        limit = min(run.max_concurrency, self.max_concurrency or run.max_concurrency)
        outcomes = await run_bounded(range(frame.height), one, limit=limit, on_result=tick)
        import polars as pl

        noted = frame["notes"].to_list() if "notes" in frame.columns else [None] * frame.height
        out = frame.with_columns(self._columns(outcomes, earlier, noted))
        return out.select(pl.exclude(_TRAILING), *_TRAILING)  # bookkeeping columns go last

    def _failure(
        self, message: str, kind: str, attempts: int, raw: str | None, usage: Usage | None = None
    ) -> _RowFailure:
        error = {
            "step": self.name,
            "type": kind,
            "message": message,
            "attempts": attempts,
            "raw_reply": raw,
        }
        return _RowFailure(error, usage)

    def _columns(
        self,
        outcomes: list[Completion[Any] | _RowFailure | None],
        earlier: list[Any],
        noted: list[Any],
    ) -> list[pl.Series]:
        import polars as pl

        done = [o if isinstance(o, Completion) else None for o in outcomes]
        results = [c.result.model_dump() if c else None for c in done]
        spent = [o.usage if isinstance(o, (Completion, _RowFailure)) else None for o in outcomes]
        schema = polars_schema(self.technique.result_type)
        series = [
            pl.Series(name, [r[name] if r else None for r in results], dtype=schema[name])
            for name in self.technique.output_columns(self.attributes)
        ]
        usage = [vars(u) if u else None for u in spent]
        errors = [
            o.error if isinstance(o, _RowFailure) else earlier[i] for i, o in enumerate(outcomes)
        ]
        return [
            *series,
            pl.Series("model_name", [c.model_name if c else None for c in done], dtype=pl.String),
            pl.Series("usage", usage, dtype=usage_dtype()),
            pl.Series("error", errors, dtype=error_dtype()),
            pl.Series("notes", _notes(self.name, done, noted), dtype=_NOTES),
        ]


_NOTES = pl.List(pl.String)


def _notes(
    step: str, done: list[Completion[Any] | None], noted: list[Any]
) -> list[list[str] | None]:
    """Each row's notes: an earlier step's, then this step's (a list cut or short)."""
    rows = []
    for completion, before in zip(done, noted, strict=True):
        mine = [f"{step}: {n}" for n in size_notes(completion.result)] if completion else []
        rows.append([*(before or []), *mine] or None)
    return rows


def _sample_indices(programs: list[Any], model: Model, run: RunContext) -> list[int]:
    """Rows with identical prompts get sample indices 0, 1, 2...: distinct cache entries.

    The run numbers them over the whole input, not per chunk.
    """
    return [
        run.number_sample(cache_key(planned.first, model)[:_PROMPT_KEY_CHARS])
        if isinstance(planned, _RowCall)
        else 0
        for planned in programs
    ]
