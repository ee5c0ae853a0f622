"""TechniqueStep: a technique applied to every row, its inputs read from columns.

A step maps rows to sequences of prompt programs, hands them to the run's
:class:`Session` (which owns every call: cache, slots, budget, retries, early stop,
progress) and maps the outcomes to columns. The result fields become typed columns, plus
``model_name``, a ``usage`` struct and an ``error`` struct. A failed row keeps its inputs,
gets nulls in the result columns and records why in ``error``; a row that an earlier step
already failed is skipped and keeps that error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .._engine._driver import add_usage
from .._engine._session import Outcome, RowError, RowFailure, Session
from .._engine._types import Completion, Usage
from .._errors import AttributeValueError
from .._model import Model
from .._schema import polars_schema, struct_of
from .._sized import size_notes
from ._step import BOOKKEEPING_COLUMNS, Contract, Step

if TYPE_CHECKING:
    import polars as pl

    from .._technique import Technique

__all__ = ["TechniqueStep", "error_dtype", "usage_dtype"]


def usage_dtype() -> pl.Struct:
    """The ``usage`` column: what each row's call cost (the fields of :class:`Usage`)."""
    return struct_of(Usage)


def error_dtype() -> pl.Struct:
    """The ``error`` column: null for a row that succeeded, else why it failed."""
    return struct_of(RowError)


_TRAILING = tuple(BOOKKEEPING_COLUMNS)


@dataclass(frozen=True, repr=False)
class TechniqueStep(Step):
    """A technique as a recipe step. Build it with ``technique.step(...)``."""

    technique: Technique[Any]
    attributes: Mapping[str, Any] = field(hash=False)
    columns: Mapping[str, str] = field(hash=False)  # technique input -> frame column
    model: Model | None = None
    name: str = ""
    max_concurrency: int | None = None
    num_generations: int = 1
    explode_generations: bool = False
    calls_models = True

    @property
    def batched(self) -> bool:
        """True if this step's model sends its calls through a batch API."""
        return self.model is not None and self.model.batch

    def __post_init__(self) -> None:
        k = self.num_generations
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            reason = "a whole number of at least 1"
            message = f"{self.technique.name}.step(num_generations={k!r}): {reason}"
            raise AttributeValueError(
                message,
                technique=self.technique.name,
                name="num_generations",
                value=k,
                reason=reason,
            )

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
        num_generations: int = 1,
        explode_generations: bool = False,
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
        return cls(
            technique,
            checked,
            columns,
            coerced,
            technique.name,
            num_generations=num_generations,
            explode_generations=explode_generations,
        )

    @property
    def contract(self) -> Contract:
        optional = self.technique.optional_inputs
        needs = {self.columns[p] for p in self.technique.inputs if p not in optional}
        needs |= self.technique.extra_columns(self.attributes)
        index = (GENERATION_INDEX,) if self.explode_generations else ()
        return Contract(
            needs=frozenset(needs),
            optional=frozenset(self.columns[p] for p in optional),
            adds=(*self._outputs().values(), *index, *_TRAILING),
        )

    def output_schema(self) -> dict[str, pl.DataType]:
        """The dtype of each column this step writes besides the bookkeeping ones."""
        import polars as pl

        schema = polars_schema(self.technique.result_type)
        columns: dict[str, pl.DataType] = {
            column: pl.List(schema[name]) if column != name else schema[name]
            for name, column in self._outputs().items()
        }
        if self.explode_generations:
            columns[GENERATION_INDEX] = pl.Int64()
        return columns

    def _outputs(self) -> dict[str, str]:
        """Each result field's column: its own name, or its plural for a list of samples."""
        fields = self.technique.output_columns(self.attributes)
        grouped = self.num_generations > 1 and not self.explode_generations
        return {f: samples_column(f) if grouped else f for f in fields}

    def arguments(self, row: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The technique's inputs and attributes for one row (a mapping of its columns)."""
        inputs = [row.get(self.columns[p]) for p in self.technique.inputs]
        while (
            inputs
            and inputs[-1] is None
            and self.technique.inputs[len(inputs) - 1] in (self.technique.optional_inputs)
        ):
            inputs.pop()
        extra = {c: row[c] for c in self.technique.extra_columns(self.attributes)}
        return inputs, {**self.attributes, **extra}

    def _inputs(self, frame: pl.DataFrame, earlier: list[Any]) -> list[_Call | RowFailure | None]:
        """Each row's arguments; None for a row an earlier step failed; a failure for a row
        with a null input."""
        contract = self.contract
        read = [c for c in (*contract.needs, *contract.optional) if c in frame.columns]
        required = [self.columns[p] for p in self.technique.inputs if p not in contract.optional]
        rows: list[_Call | RowFailure | None] = []
        for row, error in zip(frame.select(read).iter_rows(named=True), earlier, strict=True):
            missing = [c for c in required if row.get(c) is None]
            if error is not None:
                rows.append(None)
            elif missing:
                reason = f"input column {missing[0]!r} is null"
                rows.append(RowFailure(RowError(self.name, "MissingInput", reason)))
            else:
                rows.append(self.arguments(row))
        return rows

    async def apply(self, frame: pl.DataFrame, session: Session) -> pl.DataFrame:
        """Rows → sequences (``num_generations`` a row) → ``session.map`` → columns."""
        import polars as pl

        earlier = frame["error"].to_list() if "error" in frame.columns else [None] * frame.height
        noted = frame["notes"].to_list() if "notes" in frame.columns else [None] * frame.height
        inputs = self._inputs(frame, earlier)
        k = self.num_generations
        sequences = [
            self.technique.sequence(*row[0], **row[1]) if isinstance(row, tuple) else row
            for row in inputs
            for _ in range(k)
        ]
        outcomes = await session.map(
            self.name, sequences, model=self.model, limit=self.max_concurrency
        )
        groups = [outcomes[i * k : (i + 1) * k] for i in range(frame.height)]
        if self.explode_generations:
            out = self._exploded(frame, inputs, groups, earlier, noted)
        else:
            per_row = [group[0] if k == 1 else _grouped(group) for group in groups]
            out = frame.with_columns(self._columns(per_row, earlier, noted))
        return out.select(pl.exclude(_TRAILING), *_TRAILING)  # bookkeeping columns go last

    def _exploded(  # noqa: PLR0913 - the frame and what each row came to
        self,
        frame: pl.DataFrame,
        inputs: list[_Call | RowFailure | None],
        groups: list[list[Outcome]],
        earlier: list[Any],
        noted: list[Any],
    ) -> pl.DataFrame:
        """A row per sample, numbered by ``generation_index``; a row that made no call
        (failed before) stays one row, with a null index."""
        import polars as pl

        picks = [
            (i, j)
            for i, row in enumerate(inputs)
            for j in (range(len(groups[i])) if isinstance(row, tuple) else (None,))
        ]
        at = [i for i, _ in picks]
        columns = self._columns(
            [groups[i][j or 0] for i, j in picks], [earlier[i] for i in at], [noted[i] for i in at]
        )
        index = pl.Series(GENERATION_INDEX, [j for _, j in picks], dtype=pl.Int64)
        return frame[at].with_columns(*columns, index)

    def _columns(
        self, outcomes: list[Outcome], earlier: list[Any], noted: list[Any]
    ) -> list[pl.Series]:
        import polars as pl

        done = [o if isinstance(o, Completion) else None for o in outcomes]
        results = [_dumped(c.result) if c else None for c in done]
        spent = [o.usage if isinstance(o, (Completion, RowFailure)) else None for o in outcomes]
        dtypes = self.output_schema()
        series = [
            pl.Series(column, [r[name] if r else None for r in results], dtype=dtypes[column])
            for name, column in self._outputs().items()
        ]
        usage = [vars(u) if u else None for u in spent]
        errors = [
            vars(o.error) if isinstance(o, RowFailure) else earlier[i]
            for i, o in enumerate(outcomes)
        ]
        return [
            *series,
            pl.Series("model_name", [c.model_name if c else None for c in done], dtype=pl.String),
            pl.Series("usage", usage, dtype=usage_dtype()),
            pl.Series("error", errors, dtype=error_dtype()),
            pl.Series("notes", _notes(self.name, done, noted), dtype=pl.List(pl.String)),
        ]


GENERATION_INDEX = "generation_index"
"""The column that numbers a row's samples when ``explode_generations`` is set."""

_Call = tuple[list[Any], dict[str, Any]]  # a row's inputs and attributes


def samples_column(field_name: str) -> str:
    """The column of a field's samples, one list a row: its plural.

    >>> samples_column("generation"), samples_column("instructions")
    ('generations', 'instructions_samples')
    """
    return f"{field_name}_samples" if field_name.endswith("s") else f"{field_name}s"


def _grouped(samples: list[Outcome]) -> Outcome:
    """A row's samples as one outcome: the list of results, or the first failure; the
    usage of them all either way."""
    if all(sample is None for sample in samples):
        return None
    spent = [s.usage for s in samples if s is not None and s.usage is not None]
    usage = add_usage(spent) if spent else None
    failures = [s for s in samples if isinstance(s, RowFailure)]
    if failures:
        return RowFailure(failures[0].error, usage)
    done = [s for s in samples if isinstance(s, Completion)]
    return Completion([c.result for c in done], None, done[0].model_name, add_usage(spent))


def _dumped(result: Any) -> dict[str, Any]:
    """A result's fields, or for a list of samples each field's list of values."""
    if not isinstance(result, list):
        return cast("dict[str, Any]", result.model_dump())
    dumps = [r.model_dump() for r in result]
    return {name: [d[name] for d in dumps] for name in dumps[0]}


def _notes(
    step: str, done: list[Completion[Any] | None], noted: list[Any]
) -> list[list[str] | None]:
    """Each row's notes: an earlier step's, then this step's (a list cut or short)."""
    rows = []
    for completion, before in zip(done, noted, strict=True):
        results = [] if completion is None else completion.result
        samples = results if isinstance(results, list) else [results]
        mine = [f"{step}: {note}" for result in samples for note in size_notes(result)]
        rows.append([*(before or []), *dict.fromkeys(mine)] or None)
    return rows
