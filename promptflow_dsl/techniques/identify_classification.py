"""Is a task a classification task with finite output labels? (Self-Instruct's step 2.)

A few-shot completion prompt of ``Task: ...`` / ``Is it classification? Yes|No`` pairs,
sent with temperature 0, at most 3 tokens, stopping at a newline or "Task". The examples
below are ours; pass the paper's as ``examples`` to reproduce it exactly.

Input column: ``instruction``. Output columns: ``is_classification`` (``Boolean``),
``model_name``. Reference: Wang et al., arXiv 2212.10560 (2022).

>>> identify_classification.parse(" Yes"), identify_classification.parse("no")
(ClassificationVerdict(is_classification=True), ClassificationVerdict(is_classification=False))
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from .._technique import technique

__all__ = ["DEFAULT_EXAMPLES", "ClassificationVerdict", "identify_classification", "parse_verdict"]

QUESTION = "Can the following task be regarded as a classification task with finite output labels?"
DEFAULT_EXAMPLES: tuple[tuple[str, bool], ...] = (
    ("Decide whether the restaurant review below is positive or negative.", True),
    ("Write a limerick about a cat who learns to swim.", False),
    ("Given a news headline, tell which section it belongs to: sport, politics or science.", True),
    ("Explain the difference between weather and climate.", False),
    ("Is the following sentence grammatical? Answer yes or no.", True),
    ("Suggest a name for a new brand of sparkling water.", False),
    ("Tell whether the two sentences below mean the same thing.", True),
    ("Translate the paragraph into Spanish.", False),
)


class ClassificationVerdict(BaseModel):
    """Whether a task is a classification task."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    is_classification: bool = Field(
        description="True if the task has a finite set of output labels."
    )


def parse_verdict(text: str) -> ClassificationVerdict:
    """Yes if the stripped reply is Yes, yes or YES; anything else is No (as the paper reads it)."""
    return ClassificationVerdict(is_classification=text.strip() in ("Yes", "yes", "YES"))


@technique(
    result=ClassificationVerdict,
    parser=parse_verdict,
    formatter=lambda v: " Yes" if v.is_classification else " No",
    params={"temperature": 0, "max_tokens": 3, "stop": ["\n", "Task"]},
)
def identify_classification(
    instruction: str, *, examples: Sequence[tuple[str, bool]] = DEFAULT_EXAMPLES
) -> str:
    """Ask whether a task is a classification task with finite output labels."""
    shots = "".join(
        f"Task: {task}\nIs it classification? {'Yes' if yes else 'No'}\n\n"
        for task, yes in examples
    )
    return f"{QUESTION}\n\n{shots}Task: {instruction.strip()}\nIs it classification?"
