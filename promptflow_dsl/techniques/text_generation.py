"""Text generation: a response to an instruction, optionally through a Jinja template.

Input columns: ``instruction``, ``system_prompt`` (optional), and every variable the
template names. Output columns: ``generation`` (``String``), ``model_name``.
The default decoding is plain text; a structured mode wraps the text in JSON.

>>> text_generation.render("Name a colour.", template="Q: {{ instruction }} ({{ tone }})",
...                        tone="brief")
[{'role': 'user', 'content': 'Q: Name a colour. (brief)'}]
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .._errors import ParseError, TemplateError
from .._program import Message
from .._technique import technique

__all__ = ["Generation", "parse_generation", "template_variables", "text_generation"]


class Generation(BaseModel):
    """A model's response."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    generation: str = Field(description="The complete response to the instruction.")


def parse_generation(text: str) -> Generation:
    """The whole reply, stripped. An empty reply is a :class:`ParseError`."""
    if not text.strip():
        message = "the reply is empty"
        raise ParseError(message, raw_text=text, expected="a non-empty response")
    return Generation(generation=text.strip())


@functools.lru_cache(maxsize=256)
def _compile(template: str) -> Any:
    import jinja2
    import jinja2.meta

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        return env.from_string(template), frozenset(
            jinja2.meta.find_undeclared_variables(env.parse(template))
        )
    except jinja2.TemplateSyntaxError as exc:
        message = f"the template does not parse: {exc}"
        raise TemplateError(message) from None


def template_variables(attributes: Mapping[str, Any]) -> Iterable[str]:
    """The row columns a template reads besides the technique's own inputs."""
    template = attributes.get("template")
    if not template:
        return ()
    return _compile(template)[1] - {"instruction", "system_prompt"}


@technique(
    result=Generation,
    parser=parse_generation,
    formatter=lambda result: result.generation,
    decoding="text",
    extra_columns=template_variables,
)
def text_generation(
    instruction: str,
    system_prompt: str | None = None,
    *,
    template: str | None = None,
    **columns: Any,
) -> list[Message]:
    """Generate a response to an instruction."""
    content = instruction
    if template:
        import jinja2

        compiled, _ = _compile(template)
        try:
            content = compiled.render(
                instruction=instruction, system_prompt=system_prompt, **columns
            )
        except jinja2.UndefinedError as exc:
            message = f"text_generation template: {exc}; pass it as a keyword or a column"
            raise TemplateError(message) from None
    system = [Message(role="system", content=system_prompt)] if system_prompt else []
    return [*system, Message(role="user", content=content)]
