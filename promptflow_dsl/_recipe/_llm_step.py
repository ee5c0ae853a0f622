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
from typing import TYPE_CHECKING, Any

from .._engine._driver import Sequence
from .._engine._session import Outcome, RowError, RowFailure, Session
from .._engine._types import Completion, Usage
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

    def _rows(self, frame: pl.DataFrame, earlier: list[Any]) -> list[Sequence | RowFailure | None]:
        """Each row's sequence of programs; None for a row an earlier step failed; a
        failure for a row with a null input."""
        contract = self.contract
        read = [c for c in (*contract.needs, *contract.optional) if c in frame.columns]
        required = [self.columns[p] for p in self.technique.inputs if p not in contract.optional]
        rows: list[Sequence | RowFailure | None] = []
        for row, error in zip(frame.select(read).iter_rows(named=True), earlier, strict=True):
            missing = [c for c in required if row.get(c) is None]
            if error is not None:
                rows.append(None)
            elif missing:
                reason = f"input column {missing[0]!r} is null"
                rows.append(RowFailure(RowError(self.name, "MissingInput", reason)))
            else:
                args, kwargs = self._arguments(row)
                rows.append(self.technique.sequence(*args, **kwargs))
        return rows

    async def apply(self, frame: pl.DataFrame, session: Session) -> pl.DataFrame:
        """Rows → sequences → ``session.map`` → columns."""
        import polars as pl

        earlier = frame["error"].to_list() if "error" in frame.columns else [None] * frame.height
        rows = self._rows(frame, earlier)
        outcomes = await session.map(self.name, rows, model=self.model, limit=self.max_concurrency)
        noted = frame["notes"].to_list() if "notes" in frame.columns else [None] * frame.height
        out = frame.with_columns(self._columns(outcomes, earlier, noted))
        return out.select(pl.exclude(_TRAILING), *_TRAILING)  # bookkeeping columns go last

    def _columns(
        self, outcomes: list[Outcome], earlier: list[Any], noted: list[Any]
    ) -> list[pl.Series]:
        import polars as pl

        done = [o if isinstance(o, Completion) else None for o in outcomes]
        results = [c.result.model_dump() if c else None for c in done]
        spent = [o.usage if isinstance(o, (Completion, RowFailure)) else None for o in outcomes]
        schema = polars_schema(self.technique.result_type)
        series = [
            pl.Series(name, [r[name] if r else None for r in results], dtype=schema[name])
            for name in self.technique.output_columns(self.attributes)
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


def _notes(
    step: str, done: list[Completion[Any] | None], noted: list[Any]
) -> list[list[str] | None]:
    """Each row's notes: an earlier step's, then this step's (a list cut or short)."""
    rows = []
    for completion, before in zip(done, noted, strict=True):
        mine = [f"{step}: {n}" for n in size_notes(completion.result)] if completion else []
        rows.append([*(before or []), *mine] or None)
    return rows
