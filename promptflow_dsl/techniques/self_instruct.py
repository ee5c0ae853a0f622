"""Self-Instruct: user queries an application could receive, generated from a document.

Input columns: ``input`` (the document), ``system_prompt`` (optional).
Output columns: ``instructions`` (``List(String)``), ``model_name``.
Reference: Wang et al., *Self-Instruct: Aligning Language Models with Self-Generated
Instructions*, arXiv 2212.10560 (2022).

>>> self_instruct.parse("1. Explain tides.\\n\\n2) Why is the sky blue?\\n- Explain tides.")
InstructionList(instructions=['Explain tides.', 'Why is the sky blue?'])
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .._errors import ParseError
from .._program import Message
from .._technique import technique

__all__ = [
    "DEFAULT_CRITERIA",
    "InstructionList",
    "format_instructions",
    "parse_instructions",
    "self_instruct",
]

DEFAULT_CRITERIA = """\
- Begin each query with a different verb, so the queries ask for different kinds of work \
(explain, compare, list, rewrite, classify, plan, ...).
- Keep each query to one or two sentences.
- Make each query self-contained: it must make sense to someone who has not seen the context.
- Blend questions with imperative instructions.
- Write one query per line."""

PROMPT = """\
# Task
Write {num_instructions} diverse queries that a user could send to {application_description}. \
Use the context below as the subject matter.

# Criteria
{criteria}

# Context
{input}

# Output
Exactly {num_instructions} queries, one per line, with no numbering, bullets or commentary."""


class InstructionList(BaseModel):
    """Instructions (user queries), one string each, without numbering or bullets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instructions: list[str] = Field(
        min_length=1,  # an empty list is a failed row, never a document that vanishes
        description="The generated user queries: one query per item, no numbering or bullets.",
    )


_MARKERS = re.compile(r"^\s*(?:(?:\(?\d{1,3}\s*[.):\-]|[-*•+])(?:\s+|$))+")
"""A line's leading run of list markers, nested ones included ("- 1. ", "- - ")."""


def _strip_markers(line: str) -> str:
    return _MARKERS.sub("", line, count=1).strip()


def parse_instructions(text: str) -> InstructionList:
    """One instruction per non-blank line; list markers removed; duplicates dropped.

    A list marker is a number of up to three digits with ``.``, ``)``, ``:`` or ``-``
    (``1.``, ``(2)``, ``3 -``) or a bullet (``-``, ``*``, ``•``, ``+``), followed by
    whitespace or the end of the line. Every marker at the start of a line goes, so a
    nested list reads like a flat one and parsing a formatted result changes nothing.
    Raises :class:`ParseError` when no line holds an instruction.

    >>> parse_instructions("- - Explain tides.\\n1. * 2024 was a leap year: why?").instructions
    ['Explain tides.', '2024 was a leap year: why?']
    """
    seen: dict[str, None] = {}
    for line in text.splitlines():
        item = _strip_markers(line)
        if item:
            seen.setdefault(item, None)
    if not seen:
        message = "no instruction found in the reply"
        raise ParseError(message, raw_text=text, expected="one instruction per line")
    return InstructionList(instructions=list(seen))


def format_instructions(result: InstructionList) -> str:
    """The instructions as a numbered list, the way models usually write them."""
    return "\n".join(f"{i}. {item}" for i, item in enumerate(result.instructions, 1))


@technique(
    result=InstructionList,
    parser=parse_instructions,
    formatter=format_instructions,
    sizes={"instructions": "num_instructions"},
)
def self_instruct(
    input: str,  # noqa: A002 - the column name the seeds use
    system_prompt: str | None = None,
    *,
    num_instructions: Annotated[int, Field(ge=1)] = 5,
    criteria_for_query_generation: str = DEFAULT_CRITERIA,
    application_description: str = "AI assistant",
) -> list[Message]:
    """Generate user queries for an application, grounded in a document."""
    content = PROMPT.format(
        num_instructions=num_instructions,
        application_description=application_description,
        criteria=criteria_for_query_generation.strip(),
        input=input.strip(),
    )
    system = [Message(role="system", content=system_prompt)] if system_prompt else []
    return [*system, Message(role="user", content=content)]
