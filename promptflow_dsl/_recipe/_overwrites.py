"""Input columns that a step writes over: found from the contracts, before anything runs.

A frame with an ``instruction`` column fed to a recipe that explodes queries into
``instruction`` loses its own values without a word; these functions name each such
column and the step that replaces it. With the input's columns unknown (at ``>>`` time),
the columns the recipe reads from its input stand for them.

>>> from promptflow_dsl import explode, self_instruct, text_generation
>>> steps = (self_instruct.step() >> explode("instructions", into="instruction")
...          >> text_generation.step()).steps
>>> overwritten_inputs(steps, ["input", "instruction"])
[('instruction', 'explode')]
>>> overwritten_inputs(steps)  # the recipe reads only `input`: nothing it reads is lost
[]
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

from .._errors import ColumnOverwriteWarning
from ._step import BOOKKEEPING_COLUMNS, Step

__all__ = ["overwrite_warnings", "overwritten_inputs", "warn_overwrites"]


def overwritten_inputs(
    steps: Sequence[Step], input_columns: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """Each (input column, step) where the step writes over the input's own values.

    *input_columns* are the input frame's columns; None (composition time) takes the
    columns the recipe reads from its input. Bookkeeping columns (``model_name``,
    ``usage``, ``error``) are meant to be rewritten and are left out.
    """
    known = input_columns is not None
    from_input: dict[str, None] = dict.fromkeys(input_columns or ())
    written: set[str] = set()
    found: list[tuple[str, str]] = []
    for step in steps:
        contract = step.contract
        if not known:
            reads = (*sorted(contract.needs), *sorted(contract.optional))
            from_input.update(dict.fromkeys(c for c in reads if c not in written))
        for column in contract.adds:
            if column in from_input and column not in written | set(BOOKKEEPING_COLUMNS):
                found.append((column, step.name))
            written.add(column)
        if contract.keeps_only is not None:
            from_input = {c: None for c in from_input if c in contract.keeps_only}
        for column in contract.removes:
            from_input.pop(column, None)
    return found


def overwrite_warnings(
    steps: Sequence[Step], input_columns: Iterable[str] | None = None
) -> list[str]:
    """One line per input column a step writes over: what, where, and what to do."""
    return [
        f"step {step!r} writes column {column!r}, which the input already has: the input's "
        f"values are replaced; rename one of them (rename({column}=...)) to keep both"
        for column, step in overwritten_inputs(steps, input_columns)
    ]


def warn_overwrites(
    steps: Sequence[Step], input_columns: Iterable[str] | None = None, *, stacklevel: int = 3
) -> None:
    """Issue a :class:`ColumnOverwriteWarning` for each input column a step writes over.

    Python's warning filters show each one once per place in the user's code.
    """
    for line in overwrite_warnings(steps, input_columns):
        warnings.warn(line, ColumnOverwriteWarning, stacklevel=stacklevel)
