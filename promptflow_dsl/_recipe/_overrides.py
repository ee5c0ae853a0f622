"""Overrides: ``STEP.ATTRIBUTE=VALUE`` assignments that change a recipe's steps from outside.

The CLI's ``--set`` uses them, so a recipe file can be tried with another model, more
instructions or a stricter threshold without editing it. ``STEP`` is a step name (every
step so named, inside loops too); ``ATTRIBUTE`` is a technique attribute, a field of a
frame step, ``model``, ``model.FIELD`` (``model.temperature``, ``model.max_tokens``, ...),
or ``inputs.PARAM`` (the column a technique input is read from: the CLI's ``--map``).
``VALUE`` is read as JSON when it parses (``3``, ``0.5``, ``true``, ``["a"]``) and as text
otherwise, then checked against the attribute's type.

>>> from promptflow_dsl import explode, self_instruct
>>> recipe = self_instruct.step() >> explode("instructions", into="instruction")
>>> changed = apply_overrides(recipe, ["self_instruct.num_instructions=3",
...                                    "self_instruct.model=openai/gpt-4o-mini"])
>>> step = changed.steps[0]
>>> step.attributes["num_instructions"], step.model.name
(3, 'openai/gpt-4o-mini')
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Iterable
from typing import Any

from .._errors import AttributeValueError, OverrideError
from .._model import OFFLINE_MODEL, Model
from ._llm_step import TechniqueStep
from ._loop import _Around, walk
from ._recipe import Recipe
from ._step import Step

__all__ = ["Override", "apply_overrides", "parse_override"]


@dataclasses.dataclass(frozen=True)
class Override:
    """One assignment: ``step.attribute = value`` (``attribute`` may be ``model.FIELD``)."""

    step: str
    attribute: str
    value: Any
    text: str
    raw: str = dataclasses.field(default="", repr=False)  # the text after "=", as written


def parse_override(text: str) -> Override:
    """Read ``STEP.ATTRIBUTE=VALUE``; the value as JSON when it parses, else as text.

    >>> parse_override("evol_instruct.rounds=2")
    Override(step='evol_instruct', attribute='rounds', value=2, text='evol_instruct.rounds=2')
    """
    target, equals, raw = text.partition("=")
    step, dot, attribute = target.strip().partition(".")
    if not (equals and dot and step and attribute):
        message = (
            f"--set {text!r}: write STEP.ATTRIBUTE=VALUE, e.g. self_instruct.num_instructions=3"
        )
        raise OverrideError(message)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return Override(step, attribute.strip(), value, text, raw)


def apply_overrides(
    recipe: Recipe | Step,
    overrides: Iterable[str | Override],
    *,
    default_model: str | Model = OFFLINE_MODEL,
) -> Recipe:
    """The recipe with each override applied to every step of that name.

    *default_model* is the run's model, the base for ``STEP.model.FIELD`` on a step that
    has no model of its own.
    """
    recipe = recipe if isinstance(recipe, Recipe) else Recipe((recipe,))
    for item in overrides:
        override = parse_override(item) if isinstance(item, str) else item
        found: list[str] = []

        def change(step: Step, override: Override = override, found: list[str] = found) -> Step:
            if step.name != override.step:
                return step
            found.append(step.name)
            return _assign(step, override, Model.coerce(default_model))

        recipe = _map_steps(recipe, change)
        if not found:
            names = sorted({step.name for step, _ in walk(recipe)})
            message = (
                f"--set {override.text!r}: the recipe has no step {override.step!r}; "
                f"its steps are {', '.join(names)}"
            )
            raise OverrideError(message)
    return recipe


def _map_steps(recipe: Recipe, change: Callable[[Step], Step]) -> Recipe:
    steps = []
    for step in recipe.steps:
        if isinstance(step, _Around):
            step = dataclasses.replace(step, body=_map_steps(step.body, change))
        steps.append(change(step))
    return Recipe(tuple(steps))


_SAMPLING = {"num_generations": int, "explode_generations": bool}
"""Options of every technique step, besides the technique's own attributes."""


def _assign(step: Step, override: Override, default_model: Model) -> Step:
    head, _, field_name = override.attribute.partition(".")
    if isinstance(step, TechniqueStep) and head == "inputs":
        return _mapped(step, field_name, override)
    if isinstance(step, TechniqueStep) and head == "model":
        return dataclasses.replace(
            step, model=_model(step.model, default_model, field_name, override)
        )
    if isinstance(step, TechniqueStep) and override.attribute in _SAMPLING:
        value = _checked(override, _SAMPLING[override.attribute])
        return dataclasses.replace(step, **{override.attribute: value})  # checked when made
    if isinstance(step, TechniqueStep):
        allowed = step.technique.attributes
        if override.attribute not in allowed:
            _unknown(override, [*sorted(allowed), *_SAMPLING, "model", "model.FIELD"])
        value = _checked_attribute(step, override)
        return dataclasses.replace(step, attributes={**step.attributes, override.attribute: value})
    fields: set[str] = set()
    if dataclasses.is_dataclass(step):
        fields = {f.name for f in dataclasses.fields(step) if f.init} - {"name", "body"}
    if override.attribute not in fields:
        _unknown(override, sorted(fields))
    hints = _hints(type(step))
    value = _checked(override, hints.get(override.attribute, Any))
    return typing.cast(
        Step, dataclasses.replace(typing.cast(Any, step), **{override.attribute: value})
    )


def _model(current: Model | None, default: Model, field_name: str, override: Override) -> Model:
    if not field_name:
        return _renamed(current, default, override)
    if field_name == "api_key" or _holds_secret(field_name, override.value):
        message = (
            f"--set {override.step}.{override.attribute}: keys and credentials stay out of "
            "command lines (and provenance); set the provider's environment variable"
        )
        raise OverrideError(message)
    fields = {f.name for f in dataclasses.fields(Model)} - {"name", "api_key"}
    if field_name not in fields:
        _unknown(override, sorted(f"model.{f}" for f in fields))
    value = _checked(override, _hints(Model)[field_name])
    return (current or default).replace(**{field_name: value})


def _mapped(step: TechniqueStep, name: str, override: Override) -> TechniqueStep:
    """``STEP.inputs.PARAM=COLUMN`` (``--map STEP.PARAM=COLUMN``): read PARAM from COLUMN."""
    inputs = step.technique.inputs
    if name not in inputs:
        message = (
            f"--map {override.step}.{name}={override.raw}: {name!r} is not an input of "
            f"step {override.step!r}; its inputs are {', '.join(inputs)}"
        )
        raise OverrideError(message)
    if not override.raw.strip():
        message = f"--map {override.step}.{name}=: name the column to read {name!r} from"
        raise OverrideError(message)
    return dataclasses.replace(step, columns={**step.columns, name: override.raw.strip()})


def _renamed(current: Model | None, default: Model, override: Override) -> Model:
    """``STEP.model=NAME``: the step's other settings stay, and so does the run's server.

    A model with no ``api_base`` of its own takes the run's (``--api-base``): the user
    pointed the run at that server, not at the provider's public host.
    """
    if not isinstance(override.value, str) or not override.value.strip():
        message = f"--set {override.text!r}: the model must be a model string"
        raise OverrideError(message)
    renamed = (current or default).replace(name=override.value.strip())
    return renamed if renamed.api_base else renamed.replace(api_base=default.api_base)


def _hints(owner: Any) -> dict[str, Any]:
    """Annotations resolved, including names imported only for type checking."""
    import polars as pl

    return typing.get_type_hints(owner, localns={"pl": pl})


_SECRET_WORDS = ("key", "token", "secret", "password", "authorization", "header", "cookie")


def _checked_attribute(step: TechniqueStep, override: Override) -> Any:
    """The value as the technique checks it: its type and its declared range."""
    technique, name = step.technique, override.attribute
    try:
        return technique.check_attributes({name: override.value})[name]
    except AttributeValueError as exc:
        if override.raw != override.value:  # JSON that was meant as text: `name=2024`
            try:
                return technique.check_attributes({name: override.raw})[name]
            except AttributeValueError:
                pass
        message = f"--set {override.text!r}: {name} must be {exc.reason}"
        raise OverrideError(message) from None


def _holds_secret(field_name: str, value: Any) -> bool:
    """A value that may carry a credential: key-like params, or a base URL with a password."""
    if field_name == "params" and isinstance(value, dict):
        return any(word in str(name).lower() for name in value for word in _SECRET_WORDS)
    if field_name == "api_base" and isinstance(value, str):
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        return parts.username is not None or parts.password is not None
    return False


def _checked(override: Override, annotation: Any) -> Any:
    from pydantic import PydanticSchemaGenerationError, TypeAdapter, ValidationError

    try:
        adapter = TypeAdapter(annotation)
    except PydanticSchemaGenerationError:
        message = (
            f"--set {override.text!r}: {override.attribute} cannot be set from the command line"
        )
        raise OverrideError(message) from None
    try:
        return adapter.validate_python(override.value)
    except ValidationError as exc:
        if override.raw != override.value:  # JSON that was meant as text: `name=2024`
            try:
                return adapter.validate_python(override.raw)
            except ValidationError:
                pass
        reason = exc.errors()[0]["msg"]
        message = f"--set {override.text!r}: {reason}"
        raise OverrideError(message) from None


def _unknown(override: Override, known: list[str]) -> typing.NoReturn:
    message = (
        f"--set {override.text!r}: step {override.step!r} has no attribute "
        f"{override.attribute!r}; it has {', '.join(known) or 'none'}"
    )
    raise OverrideError(message)
