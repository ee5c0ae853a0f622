"""The Self-Instruct bootstrap prompt: a numbered list of tasks for the model to continue.

Eight sampled instructions (up to two machine-made, the rest human seeds) are written as
a numbered list after a header, and the prompt ends with the next number, so a
completion model continues the list. Sent as a raw completion prompt with the paper's
decoding defaults (temperature 0.7, top_p 0.5, presence penalty 2, 1024 tokens, stopping
at a blank line or item 16), each of which a ``Model`` may override.

Input column: ``instructions`` (the sampled list). Attributes: ``classification`` (the
classification header) and ``faithful`` (the paper's exact post-processing).
Output columns: ``new_instructions`` (``List(String)``), ``model_name``.
Reference: Wang et al., *Self-Instruct: Aligning Language Models with Self-Generated
Instructions*, arXiv 2212.10560 (2022).

>>> print(bootstrap_instructions.render(["Give three tips for staying healthy:", "Sort  it."]))
Come up with a series of tasks:
1. Give three tips for staying healthy
2. Sort it.
3.
"""

from __future__ import annotations

import functools
import re
import string

from pydantic import BaseModel, ConfigDict, Field

from .._program import PromptProgram
from .._recipe._frame_steps import PAPER_BLOCKED_WORDS
from .._technique import technique

__all__ = [
    "CLASSIFICATION_HEADER",
    "HEADER",
    "PAPER_PARAMS",
    "NewInstructions",
    "bootstrap_instructions",
    "format_new_instructions",
    "parse_new_instructions",
]

HEADER = "Come up with a series of tasks:\n"
CLASSIFICATION_HEADER = (
    "Come up with a series of classification tasks. "
    "Try to specify the possible output labels when possible.\n"
)
PAPER_PARAMS = {
    "temperature": 0.7,
    "top_p": 0.5,
    "presence_penalty": 2,
    "max_tokens": 1024,
    "stop": ["\n\n", "\n16", "16.", "16 ."],
}
_BLOCKED = re.compile(r"\b(" + "|".join(PAPER_BLOCKED_WORDS) + r")\b", re.IGNORECASE)
_ITEM = re.compile(r"\n\d+\s?\. ")


class NewInstructions(BaseModel):
    """The instructions a bootstrap completion added to the list, after the filters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    new_instructions: list[str] = Field(
        description="New task instructions, one per item, without numbering."
    )


def _capitalize(text: str, *, faithful: bool) -> str:
    if faithful:
        return text.capitalize()  # the paper's: also lowercases the rest ("California" too)
    return text[:1].upper() + text[1:]


def _keep(item: str) -> bool:
    words = len(item.split())
    return (
        bool(item)
        and 3 < words <= 150
        and not _BLOCKED.search(item)
        and not item.startswith("Write a program")
        and item[0] not in string.punctuation
        and item[0].isascii()
    )


def parse_new_instructions(
    text: str, *, faithful: bool = False, truncated: bool = False
) -> NewInstructions:
    """The paper's post-processing: split the list, normalise, and apply its filters.

    A reply cut off by the length limit (``truncated``) yields nothing. ``faithful``
    reproduces the paper's ``str.capitalize``, which lowercases all but the first letter.
    """
    if truncated:
        return NewInstructions(new_instructions=[])
    items = (
        _capitalize(re.sub(r"\s+", " ", piece).strip(), faithful=faithful)
        for piece in _ITEM.split(text)
    )
    return NewInstructions(new_instructions=[item for item in items if _keep(item)])


def format_new_instructions(result: NewInstructions) -> str:
    """A continuation a model could write after the prompt's final number."""
    first, *rest = result.new_instructions or [""]
    return " " + first + "".join(f"\n{i}. {item}" for i, item in enumerate(rest, 10))


@technique(
    result=NewInstructions,
    parser=parse_new_instructions,
    formatter=format_new_instructions,
    params=PAPER_PARAMS,
)
def bootstrap_instructions(
    instructions: list[str], *, classification: bool = False, faithful: bool = False
) -> PromptProgram[NewInstructions]:
    """Ask a completion model to continue a numbered list of tasks (Self-Instruct)."""
    lines = (re.sub(r"\s+", " ", item).strip().rstrip(":") for item in instructions)
    body = "".join(f"{i}. {line}\n" for i, line in enumerate(lines, 1))
    header = CLASSIFICATION_HEADER if classification else HEADER
    return PromptProgram(
        NewInstructions,
        prompt=f"{header}{body}{len(instructions) + 1}.",
        parser=functools.partial(parse_new_instructions, faithful=faithful),
        formatter=format_new_instructions,
        decoding="text",
        params=PAPER_PARAMS,
        subject=" ".join(instructions),
    )
