"""Result types sized to the count a prompt asks for (``num_instructions=3``: three items).

A technique declares ``sizes`` (a list field and the attribute that counts it). Each
program then gets a subclass of the result type whose JSON schema says ``minItems`` and
``maxItems``, so a provider that constrains decoding returns that many; a reply with more
is cut to the count, and one with fewer is kept, as a short result.

>>> from pydantic import BaseModel
>>> class Tags(BaseModel):
...     tags: list[str]
>>> Three = sized_result(Tags, (("tags", 3),))
>>> Three.model_json_schema()["properties"]["tags"]["maxItems"]
3
>>> result = Three(tags=["a", "b", "c", "d"])
>>> result.tags, size_notes(result)
(['a', 'b', 'c'], ('tags: 4 items, cut to the 3 asked',))
>>> size_notes(Three(tags=["a"]))
('tags: short, 1 of the 3 asked',)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, PrivateAttr, create_model, model_validator
from pydantic.fields import FieldInfo

__all__ = ["as_plain", "size_notes", "sized_parser", "sized_result"]

R = TypeVar("R", bound=BaseModel)
Counts = tuple[tuple[str, int], ...]


@functools.lru_cache(maxsize=256)
def sized_result(result_type: type[R], counts: Counts) -> type[R]:
    """*result_type* with each named list field asked to hold exactly its count.

    The subclass keeps the name, the fields and the validation of *result_type*; only the
    schema's bounds and the cut are added. Built once per type and counts.
    """
    fields: dict[str, Any] = {}
    for name, count in counts:
        field = result_type.model_fields[name]
        bounds = {"minItems": count, "maxItems": count}
        fields[name] = (
            field.annotation,
            FieldInfo.merge_field_infos(field, json_schema_extra=bounds),
        )

    def cut_to_counts(result: Any) -> Any:
        notes = []
        for name, count in counts:
            items = getattr(result, name)
            if items is None:
                continue
            if len(items) > count:
                notes.append(f"{name}: {len(items)} items, cut to the {count} asked")
                object.__setattr__(result, name, items[:count])  # frozen models too
            elif len(items) < count:
                notes.append(f"{name}: short, {len(items)} of the {count} asked")
        result._size_notes = tuple(notes)
        return result

    validators: dict[str, Any] = {"cut": model_validator(mode="after")(cut_to_counts)}
    sized = create_model(
        result_type.__name__,
        __base__=result_type,
        __module__=result_type.__module__,
        __validators__=validators,
        _size_notes=(tuple[str, ...], PrivateAttr(default=())),
        **fields,
    )
    sized.__qualname__ = result_type.__qualname__
    sized.__doc__ = result_type.__doc__
    # Equal to the plain result with the same items (pydantic compares classes first).
    type.__setattr__(sized, "__eq__", _equal_as(result_type))
    return sized


def _equal_as(result_type: type[BaseModel]) -> Callable[[BaseModel, object], bool]:
    """Equality by fields with any result of *result_type*, sized or not."""

    def equal(self: BaseModel, other: object) -> bool:
        if not isinstance(other, result_type):
            return NotImplemented
        return dict(self) == dict(other)

    return equal


def size_notes(result: BaseModel) -> tuple[str, ...]:
    """What the count check found: items cut, or a short list (none for an unsized result)."""
    notes = getattr(result, "__pydantic_private__", None) or {}
    return tuple(notes.get("_size_notes", ()))


def as_plain(result: BaseModel, result_type: type[R]) -> R:
    """*result* rebuilt as *result_type* (from a subclass a library made), its notes kept."""
    plain = result_type.model_validate(result.model_dump())
    private = plain.__pydantic_private__
    if private is not None and size_notes(result):
        private["_size_notes"] = size_notes(result)
    return plain


def sized_parser(parser: Callable[..., R], sized: type[R]) -> Callable[..., R]:
    """*parser*, its result validated again as *sized* (so extras are cut there too).

    The wrapper keeps the parser's signature, so keywords such as ``truncated`` still
    reach it.
    """

    @functools.wraps(parser)
    def parse(text: str, **options: Any) -> R:
        return sized.model_validate(parser(text, **options).model_dump())

    return parse
