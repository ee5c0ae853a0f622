"""Result types as Polars dtypes: lists stay lists and nested models become structs.

>>> from pydantic import BaseModel
>>> class Pair(BaseModel):
...     user: str
...     tags: list[str]
...     score: float | None = None
>>> polars_schema(Pair)
{'user': String, 'tags': List(String), 'score': Float64}
>>> from dataclasses import dataclass
>>> @dataclass
... class Cost:
...     tokens: int | None
...     dollars: float
>>> struct_of(Cost)
Struct({'tokens': Int64, 'dollars': Float64})
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Union

from pydantic import BaseModel

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "canonical_json",
    "dtype_of",
    "json_schema",
    "json_schema_text",
    "polars_schema",
    "struct_of",
]


_JSON_SCHEMAS: dict[type[BaseModel], dict[str, Any]] = {}
_SCHEMA_TEXTS: dict[type[BaseModel], str] = {}


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: one text for one value, in any process."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def json_schema(result_type: type[BaseModel]) -> dict[str, Any]:
    """The result type's JSON schema, built once per type (treat it as read-only)."""
    if result_type not in _JSON_SCHEMAS:
        _JSON_SCHEMAS[result_type] = result_type.model_json_schema()
    return _JSON_SCHEMAS[result_type]


def json_schema_text(result_type: type[BaseModel]) -> str:
    """The result type's JSON schema as canonical JSON, built once per type."""
    if result_type not in _SCHEMA_TEXTS:
        _SCHEMA_TEXTS[result_type] = canonical_json(json_schema(result_type))
    return _SCHEMA_TEXTS[result_type]


def polars_schema(result_type: type[BaseModel]) -> dict[str, pl.DataType]:
    """The Polars dtype of each field of a result type."""
    return {name: dtype_of(f.annotation) for name, f in result_type.model_fields.items()}


@functools.cache
def struct_of(record: type) -> pl.Struct:
    """The Polars struct of a dataclass: one field per dataclass field, in order."""
    import polars as pl

    hints = typing.get_type_hints(record)
    return pl.Struct({f.name: dtype_of(hints[f.name]) for f in dataclasses.fields(record)})


def dtype_of(annotation: Any) -> pl.DataType:
    """The Polars dtype for one type annotation."""
    import polars as pl

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return dtype_of(next(a for a in args if a is not type(None)))
    if origin is Literal:
        return dtype_of(type(args[0]))
    if origin in (list, tuple, set, frozenset, Sequence):
        return pl.List(dtype_of(args[0]) if args else pl.String())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pl.Struct(polars_schema(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return dtype_of(type(next(iter(annotation)).value))
    if origin in (dict, Mapping):
        message = f"a dict field ({annotation}) has no fixed columns; use a nested model"
        raise TypeError(message)
    scalars = {str: pl.String(), int: pl.Int64(), float: pl.Float64(), bool: pl.Boolean()}
    if annotation in scalars:
        return scalars[annotation]
    message = f"no Polars dtype for the annotation {annotation!r}"
    raise TypeError(message)
