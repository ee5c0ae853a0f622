"""Bookkeeping columns read back from a file: ``model_name``, ``usage``, ``error``, ``notes``.

Every technique step writes them, so a run's output, used as the next run's input, has
them too, though not always in their own types: CSV holds the structs as JSON text, and
the JSON readers infer a struct's fields from its values (a field that is always null has
no type, a field never written is missing). :func:`normalise_bookkeeping` gives them back
their types, so a row that failed in one run stays failed in the next with its first error,
and refuses a column that only shares the name.

>>> import polars as pl
>>> frame = pl.DataFrame({"error": [None, '{"step": "s", "type": "T", "message": "m"}']})
>>> normalise_bookkeeping(frame)["error"].to_list()
[None, {'step': 's', 'type': 'T', 'message': 'm', 'attempts': None, 'raw_reply': None}]
"""

from __future__ import annotations

import polars as pl

from .._errors import ReservedColumnError
from ._llm_step import error_dtype, usage_dtype

__all__ = ["normalise_bookkeeping"]


def _bookkeeping_dtypes() -> dict[str, pl.DataType]:
    return {
        "model_name": pl.String(),
        "usage": usage_dtype(),
        "error": error_dtype(),
        "notes": pl.List(pl.String()),
    }


def normalise_bookkeeping(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with its bookkeeping columns in their own types (the frame itself if they
    are already), or a :class:`ReservedColumnError` for a column that cannot be one."""
    wrong = {
        name: dtype
        for name, dtype in _bookkeeping_dtypes().items()
        if name in frame.columns and frame.schema[name] != dtype
    }
    if not wrong:  # the usual case, checked on every chunk: the schema alone
        return frame
    return frame.with_columns(_restored(frame[name], dtype) for name, dtype in wrong.items())


def _restored(column: pl.Series, dtype: pl.DataType) -> pl.Series:
    """The column in *dtype*: cast from nulls or a category, decoded from JSON text, or a
    struct with its fields reordered, completed and cast."""
    found = column.dtype
    try:
        if found in (pl.Null, pl.Categorical) or isinstance(found, pl.Enum):
            return column.cast(dtype)
        if isinstance(dtype, pl.List) and found == pl.String:  # CSV's JSON text of a list
            return _decoded(column).cast(dtype)
        if isinstance(dtype, pl.Struct) and found == pl.String:
            column = _decoded(column)
        if isinstance(dtype, pl.Struct) and _fits(column.dtype, dtype):
            return _reshaped(column, dtype)
        if column.dtype == pl.Null:  # JSON text that was null on every row
            return column.cast(dtype)
    except pl.exceptions.PolarsError:
        pass  # text that is not JSON, or a field whose values are not of its type
    written = (
        "a struct of " + ", ".join(f.name for f in dtype.fields)
        if isinstance(dtype, pl.Struct)
        else "text"
    )
    message = (
        f"input column {column.name!r} holds {found}, but technique steps write "
        f"{column.name!r} as {written}; rename that column before the run"
    )
    raise ReservedColumnError(message, column=column.name)


def _decoded(column: pl.Series) -> pl.Series:
    """JSON text (CSV's way to keep a struct) decoded, its struct fields inferred."""
    text = pl.col(column.name)
    blank_as_null = pl.when(text.str.strip_chars() != "").then(text)  # "" would lose its row
    return (
        column.to_frame()
        .select(blank_as_null)[column.name]
        .str.json_decode(infer_schema_length=None)
    )


def _fits(found: pl.DataType, wanted: pl.Struct) -> bool:
    """True for a struct whose fields are some of the wanted struct's fields."""
    names = {field.name for field in wanted.fields}
    return (
        isinstance(found, pl.Struct)
        and bool(found.fields)
        and {field.name for field in found.fields} <= names
    )


def _reshaped(column: pl.Series, dtype: pl.Struct) -> pl.Series:
    """The struct with *dtype*'s fields in order, missing ones null, each cast strictly."""
    present = set(column.struct.fields)
    value = pl.col(column.name)
    fields = [
        value.struct.field(f.name).cast(f.dtype) if f.name in present else pl.lit(None, f.dtype)
        for f in dtype.fields
    ]
    struct = pl.struct([e.alias(f.name) for e, f in zip(fields, dtype.fields, strict=True)])
    reshaped = pl.when(value.is_not_null()).then(struct).alias(column.name)
    return column.to_frame().select(reshaped)[column.name]
