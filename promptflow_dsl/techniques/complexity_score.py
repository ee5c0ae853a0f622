"""Deita's complexity scorer: rank a list of instructions by complexity, and score each.

The judge sees the whole list at once, so its scores compare the instructions with each
other (Deita scores the variants of one instruction that Evol-Instruct made, from the
original to the most evolved). Each score runs from 1 (simplest) to 6 (most complex), the
range of Deita's scorers. The score count must equal the number of instructions: another
count is re-asked in a structured mode and a :class:`ParseError` in text.

Input column: ``instructions`` (``List(String)``). Output columns: ``scores``
(``List(Float64)``, one per instruction, in order), ``model_name``.
Reference: Liu et al., *What Makes Good Data for Alignment? A Comprehensive Study of
Automatic Data Selection in Instruction Tuning* (Deita), arXiv 2312.15685 (2023).

>>> complexity_score.parse("Instruction 1: 2\\nInstruction 2: **5**")
Scores(scores=[2.0, 5.0])
"""

from __future__ import annotations

import functools

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._errors import InputError
from .._program import Message, PromptProgram
from .._technique import technique
from ._ratings import Scale, count_of, exactly, format_number, numbered, read_items

__all__ = ["Scores", "complexity_score", "format_scores", "parse_scores"]

SCALE = Scale(1, 6)

PROMPT = """\
# Task
Below you find {count}. Rank them by how complex and difficult they are, then \
score each from 1 (the simplest) to 6 (the most complex). An instruction is more complex \
when it asks for more: more constraints to respect, more steps of reasoning, deeper or \
rarer knowledge, a harder or more specific problem. A more complex instruction gets a \
higher score; give equal scores only to instructions that are equally complex. Do not \
answer the instructions.

# Instructions
{instructions}

# Output
One line for each instruction, in order:
Instruction <number>: <a score from 1 to 6>"""


class Scores(BaseModel):
    """A score for each item, in the order of the items."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scores: list[float] = Field(
        min_length=1,
        description="One score per item, in order: 1 (lowest) to 6 (highest).",
        json_schema_extra=SCALE.schema(),
    )

    @field_validator("scores")
    @classmethod
    def _on_the_scale(cls, scores: list[float]) -> list[float]:
        return SCALE.check(scores)


def parse_scores(text: str, *, count: int | None = None) -> Scores:
    """The scores in a judge's reply (see ``_ratings`` for what it reads); rationales, if
    any, are dropped.

    With *count*, the reply must score exactly that many items; without, it scores as many
    as it numbers. Raises :class:`ParseError` with the raw reply otherwise.
    """
    return Scores(scores=[item.score for item in read_items(text, scale=SCALE, count=count)])


def format_scores(result: Scores, *, label: str = "Instruction") -> str:
    """The reply the prompt asks for, one ``<label> <n>: <score>`` line per item (the
    parser's inverse)."""
    return "\n".join(
        f"{label} {i}: {format_number(score)}" for i, score in enumerate(result.scores, 1)
    )


def scoring_program(content: str, count: int, subject: str, label: str) -> PromptProgram[Scores]:
    """A scorer's program: *count* scores, read by a parser that expects that many."""
    return PromptProgram(
        exactly(Scores, ("scores",), count),
        messages=(Message(role="user", content=content),),
        parser=functools.partial(parse_scores, count=count),
        formatter=functools.partial(format_scores, label=label),
        subject=subject,
    )


@technique(result=Scores, parser=parse_scores, formatter=format_scores)
def complexity_score(instructions: list[str]) -> PromptProgram[Scores]:
    """Score each instruction of a list from 1 to 6 by its complexity (Deita)."""
    if not instructions:
        message = "complexity_score: 'instructions' is empty; there is nothing to score"
        raise InputError(message)
    content = PROMPT.format(
        count=count_of(len(instructions), "instruction"),
        instructions=numbered("Instruction", instructions),
    )
    return scoring_program(content, len(instructions), " ".join(instructions), "Instruction")
