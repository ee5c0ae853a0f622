"""The ``@technique`` decorator: a plain function becomes a runnable, composable technique.

The decorated function maps typed inputs (positional parameters) and attributes
(keyword-only parameters) to a prompt: a list of chat messages, a raw completion prompt
(a ``str``), or a whole :class:`PromptProgram`. It must be pure: no calls, no I/O.

>>> from pydantic import BaseModel
>>> class Title(BaseModel):
...     title: str
>>> @technique(result=Title, parser=lambda text: Title(title=text.strip()))
... def entitle(document: str, *, style: str = "plain") -> list:
...     return [{"role": "user", "content": f"Give a {style} title to: {document}"}]
>>> entitle.render("a text about owls", style="catchy")
[{'role': 'user', 'content': 'Give a catchy title to: a text about owls'}]
>>> entitle("a text about owls", model="mock").title != ""
True
"""

from __future__ import annotations

import functools
import inspect
import reprlib
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict, PydanticUserError, TypeAdapter, ValidationError

from ._engine._driver import Sequence
from ._errors import AttributeValueError, InputTypeError, ParseError
from ._model import Model
from ._program import Decoding, Message, PromptProgram
from ._sized import sized_parser, sized_result

if TYPE_CHECKING:
    from ._engine._cache import ReplyCache
    from ._engine._types import Completion
    from ._recipe._llm_step import TechniqueStep

__all__ = ["Technique", "technique"]

R = TypeVar("R", bound=BaseModel)
Builder = Callable[..., "list[Message] | list[dict[str, str]] | str | PromptProgram[Any]"]


class Technique(Generic[R]):
    """A technique: call it, render it, parse with it, or make it a recipe step."""

    def __init__(
        self,
        build: Builder,
        *,
        result: type[R],
        parser: Callable[[str], R] | None = None,
        formatter: Callable[[R], str] | None = None,
        decoding: Decoding = "structured",
        params: Mapping[str, Any] | None = None,
        extra_columns: Callable[[Mapping[str, Any]], Iterable[str]] | None = None,
        outputs: Callable[[Mapping[str, Any]], Iterable[str]] | None = None,
        sizes: Mapping[str, str] | None = None,
    ) -> None:
        self._build = build
        self._sizes = dict(sizes or {})
        self._outputs = outputs
        self.is_sequence = inspect.isgeneratorfunction(build)
        self.result_type = result
        self.parser = parser
        self.formatter = formatter
        self.decoding = decoding
        self.params = dict(params or {})
        self._extra_columns = extra_columns
        self.signature = inspect.signature(build)
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        params_ = self.signature.parameters.values()
        self.inputs = tuple(p.name for p in params_ if p.kind in kinds)
        self.optional_inputs = frozenset(
            p.name for p in params_ if p.kind in kinds and p.default is not p.empty
        )
        self.attributes = {
            p.name: p.default for p in params_ if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        functools.update_wrapper(self, build)
        self.name: str = build.__name__

    def __repr__(self) -> str:
        return f"<technique {self.name}{self.signature}>"

    def __reduce__(self) -> str:
        return self._build.__qualname__  # pickled by reference, like the function it wraps

    @property
    def summary(self) -> str:
        """The first line of the technique's docstring."""
        return (self.__doc__ or "").strip().splitlines()[0] if self.__doc__ else ""

    def _bind(self, inputs: tuple[Any, ...], attributes: Mapping[str, Any]) -> Any:
        try:
            bound = self.signature.bind(*inputs, **attributes)
        except TypeError as exc:
            message = f"{self.name}: {exc}. Signature: {self.name}{self.signature}"
            raise TypeError(message) from None
        for name, check in self._input_checks.items():
            if name in bound.arguments:
                bound.arguments[name] = self._checked(name, bound.arguments[name], check)
        bound.arguments.update(
            self.check_attributes(
                {n: v for n, v in bound.arguments.items() if n in self.attributes}
            )
        )
        return bound

    def check_attributes(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """The attributes, validated against their annotations and declared ranges.

        A range is declared in the annotation, the pydantic way
        (``num_instructions: Annotated[int, Field(ge=1)] = 5``). Raises
        :class:`AttributeValueError` naming the attribute; names that are not attributes
        pass through unchecked (the signature rejects them).

        >>> from promptflow_dsl import AttributeValueError, self_instruct
        >>> try:
        ...     self_instruct.check_attributes({"num_instructions": 0})
        ... except AttributeValueError as exc:
        ...     print(exc.reason)
        greater than or equal to 1
        """
        checked = dict(attributes)
        for name, value in attributes.items():
            check = self._attribute_checks.get(name)
            if check is None:
                continue
            try:
                checked[name] = check.validate_python(value)
            except ValidationError as exc:
                reason = exc.errors()[0]["msg"].removeprefix("Input should be ")
                message = (
                    f"{self.name}: attribute {name!r} must be {reason}, got "
                    f"{type(value).__name__} {reprlib.repr(value)}"
                )
                raise AttributeValueError(
                    message, technique=self.name, name=name, value=value, reason=reason
                ) from None
        return checked

    @functools.cached_property
    def _attribute_checks(self) -> dict[str, TypeAdapter[Any]]:
        """A validator per annotated attribute (ranges kept: ``include_extras``)."""
        try:
            hints = typing.get_type_hints(self._build, include_extras=True)
        except (NameError, TypeError):  # annotations only a type checker can resolve
            return {}
        checks = {}
        for name in self.attributes:
            if hints.get(name, Any) is Any:
                continue
            try:
                checks[name] = TypeAdapter(hints[name])
            except PydanticUserError:  # a type pydantic cannot check (a callable, say)
                continue
        return checks

    @functools.cached_property
    def input_types(self) -> dict[str, Any]:
        """The annotated type of each input (inputs without one are left out)."""
        try:
            hints = typing.get_type_hints(self._build)
        except (NameError, TypeError):  # annotations only a type checker can resolve
            return {}
        return {n: hints[n] for n in self.inputs if hints.get(n, Any) is not Any}

    @functools.cached_property
    def _input_checks(self) -> dict[str, TypeAdapter[Any]]:
        """A validator per annotated input (inputs come from columns of any type)."""
        return {name: _input_check(kind) for name, kind in self.input_types.items()}

    def _checked(self, name: str, value: Any, check: TypeAdapter[Any]) -> Any:
        """The value as its annotation says, or an :class:`InputTypeError` naming the input."""
        try:
            return check.validate_python(value)
        except ValidationError as exc:
            expected = exc.errors()[0]["msg"].removeprefix("Input should be ")
            message = (
                f"{self.name}: input {name!r} must be {expected}, got "
                f"{type(value).__name__} {reprlib.repr(value)}; fix the value or the column"
            )
            raise InputTypeError(message, technique=self.name, name=name, value=value) from None

    def sequence(self, *inputs: Any, **attributes: Any) -> Sequence:
        """The programs this technique runs, as a generator that receives each result.

        Nothing is built until the generator is advanced.
        """
        if not self.is_sequence:
            return self._one_call(inputs, attributes)
        bound = self._bind(inputs, attributes)
        return cast(Sequence, self._build(*bound.args, **bound.kwargs))

    def _one_call(self, inputs: tuple[Any, ...], attributes: dict[str, Any]) -> Sequence:
        """The sequence of a single-call technique: its program, then its result."""
        result = yield self.program(*inputs, **attributes)
        return result

    def program(self, *inputs: Any, **attributes: Any) -> PromptProgram[R]:
        """The (first) prompt program for these inputs: a value; nothing is called."""
        if self.is_sequence:
            first = self.sequence(*inputs, **attributes)
            try:
                return next(first)
            finally:
                first.close()
        bound = self._bind(inputs, attributes)
        built = self._build(*bound.args, **bound.kwargs)
        if isinstance(built, PromptProgram):
            return built
        messages: tuple[Message, ...] = ()
        prompt: str | None = None
        if isinstance(built, str):
            prompt = built
        else:
            prompt, messages = (
                None,
                tuple(Message(role=m["role"], content=m["content"]) for m in built),
            )
        sizes = {name: self._attribute(bound, attr) for name, attr in self._sizes.items()}
        result_type = self.result_type
        parser = self.parser
        if sizes:  # the schema asks for the count; extras are cut, a short list is kept
            result_type = sized_result(result_type, tuple(sorted(sizes.items())))
            parser = sized_parser(parser, result_type) if parser else None
        return PromptProgram(
            result_type,
            messages=messages,
            prompt=prompt,
            parser=parser,
            formatter=self.formatter,
            decoding="text" if prompt is not None else self.decoding,
            params=self.params,
            subject=" ".join(v for v in bound.arguments.values() if isinstance(v, str)),
            sizes=sizes,
        )

    def _attribute(self, bound: Any, name: str) -> Any:
        """An attribute's value in a call: given, or its default."""
        return bound.arguments.get(name, self.attributes.get(name))

    def render(self, *inputs: Any, **attributes: Any) -> list[Message] | str:
        """The messages (or raw prompt) that would be sent, with no call."""
        return self.program(*inputs, **attributes).render()

    def parse(self, text: str, **options: Any) -> R:
        """Read a result out of raw model text with the technique's pure parser.

        *options* go to the parser (``bootstrap_instructions.parse(text, faithful=True)``).
        """
        if self.parser is None:
            message = f"{self.name} has no text parser"
            raise ParseError(message, raw_text=text, expected="a structured reply")
        return self.parser(text, **options)

    def format(self, result: R) -> str:
        """Write a result as the text its parser reads (the parser's inverse)."""
        if self.formatter is None:
            message = f"{self.name} has no text formatter"
            raise TypeError(message)
        return self.formatter(result)

    async def acall(
        self, *inputs: Any, model: str | Model, cache: bool | ReplyCache = True, **attributes: Any
    ) -> R:
        """Run the technique and return its validated result (async).

        ``cache``: True uses the default reply cache, False makes a fresh call.
        """
        from ._engine._batch import tell_running_batches
        from ._engine._cache import open_cache
        from ._engine._session import Session

        chosen = Model.coerce(model)
        store = None if chosen.is_offline else open_cache(cache)  # offline answers are free
        session = Session(model=chosen, cache=store, on_error="raise")
        try:
            (outcome,) = await session.map(self.name, [self.sequence(*inputs, **attributes)])
        finally:  # a Model(batch=True) call: say how to collect a batch it left running
            again = "call it again with the same cache" if store else None
            tell_running_batches(await session.aclose(), again)
        return cast("Completion[R]", outcome).result  # on_error="raise": a failure raises

    def __call__(
        self, *inputs: Any, model: str | Model, cache: bool | ReplyCache = True, **attributes: Any
    ) -> R:
        """Run the technique and return its validated result. Works inside a running loop."""
        from ._engine._portal import run_sync

        return run_sync(self.acall(*inputs, model=model, cache=cache, **attributes))

    def output_columns(self, attributes: Mapping[str, Any]) -> tuple[str, ...]:
        """The result fields that become columns in a recipe, for these attributes."""
        if self._outputs is None:
            return tuple(self.result_type.model_fields)
        return tuple(self._outputs({**self.attributes, **attributes}))

    def extra_columns(self, attributes: Mapping[str, Any]) -> frozenset[str]:
        """Row columns the prompt reads beyond the inputs (e.g. template variables)."""
        if self._extra_columns is None:
            return frozenset()
        return frozenset(self._extra_columns({**self.attributes, **attributes}))

    def step(
        self,
        *,
        model: str | Model | None = None,
        inputs: Mapping[str, str] | None = None,
        num_generations: int = 1,
        explode_generations: bool = False,
        **attributes: Any,
    ) -> TechniqueStep:
        """This technique as a recipe step, attributes bound, inputs mapped to columns.

        ``num_generations=k`` runs the technique *k* times a row, as *k* distinct samples
        (distinct cache entries): each result field becomes a list column named by its
        plural (``generation`` → ``generations``), or, with ``explode_generations``, *k*
        rows a row numbered by ``generation_index``.

        >>> from promptflow_dsl import self_instruct
        >>> self_instruct.step(num_instructions=3, inputs={"input": "document"})
        self_instruct
        """
        from ._recipe._llm_step import TechniqueStep

        checked = self.check_attributes(attributes)  # a bad value fails here, not every row
        return TechniqueStep.build(
            self,
            model=model,
            inputs=inputs or {},
            attributes=checked,
            num_generations=num_generations,
            explode_generations=explode_generations,
        )


_NUMBERS_AS_TEXT = ConfigDict(coerce_numbers_to_str=True)


def _input_check(annotation: Any) -> TypeAdapter[Any]:
    """Pydantic's lax validation, plus one rule: a number in a text input is its text.

    >>> _input_check(str).validate_python(7)
    '7'
    """
    try:
        return TypeAdapter(annotation, config=_NUMBERS_AS_TEXT)
    except PydanticUserError:  # a model or dataclass brings its own config
        return TypeAdapter(annotation)


def technique(
    build: Builder | None = None,
    *,
    result: type[R],
    parser: Callable[[str], R] | None = None,
    formatter: Callable[[R], str] | None = None,
    decoding: Decoding = "structured",
    params: Mapping[str, Any] | None = None,
    extra_columns: Callable[[Mapping[str, Any]], Iterable[str]] | None = None,
    outputs: Callable[[Mapping[str, Any]], Iterable[str]] | None = None,
    sizes: Mapping[str, str] | None = None,
) -> Any:
    """Decorate a prompt-building function into a :class:`Technique`.

    ``decoding`` is the default path for chat prompts: ``"structured"`` (Instructor) or
    ``"text"`` (the parser). Raw prompts (a returned ``str``) always decode as text.
    A generator function makes a multi-call technique: it yields programs, receives their
    results and returns its own. ``extra_columns`` and ``outputs`` say, from the
    attributes, which more columns a step reads and which result fields it writes.
    ``sizes`` maps a list field to the attribute that says how many items the prompt asks
    for (``{"instructions": "num_instructions"}``), which the offline model honours.

    Inputs are checked against their annotations whenever a program is built: a number in
    a text input is read as its text (``7`` is ``"7"``); any other mismatch (a list, a
    struct or a boolean where text goes) raises :class:`InputTypeError`, which a recipe
    step records as that row's failure.
    """

    def wrap(fn: Builder) -> Technique[R]:
        return Technique(
            fn,
            result=result,
            parser=parser,
            formatter=formatter,
            decoding=decoding,
            params=params,
            extra_columns=extra_columns,
            outputs=outputs,
            sizes=sizes,
        )

    return wrap if build is None else wrap(build)
