"""Deita's quality scorer: rank the responses to one instruction by quality, and score each.

The judge sees the instruction and all the responses at once, so its scores compare the
responses with each other (Deita scores the variants of one response that an evolution
towards quality made). Each score runs from 1 (worst) to 6 (best), the range of Deita's
scorers. The score count must equal the number of responses: another count is re-asked in
a structured mode and a :class:`ParseError` in text.

Input columns: ``instruction``, ``responses`` (``List(String)``). Output columns:
``scores`` (``List(Float64)``, one per response, in order), ``model_name``.
Reference: Liu et al., *What Makes Good Data for Alignment? A Comprehensive Study of
Automatic Data Selection in Instruction Tuning* (Deita), arXiv 2312.15685 (2023).

>>> quality_score.parse('{"scores": [5, 3.5]}')
Scores(scores=[5.0, 3.5])
"""

from __future__ import annotations

import functools

from .._errors import InputError
from .._program import PromptProgram
from .._technique import technique
from ._ratings import count_of, numbered
from .complexity_score import Scores, format_scores, parse_scores, scoring_program

__all__ = ["quality_score"]

PROMPT = """\
# Task
Below are an instruction and {count} to it. Rank the responses by quality, then \
score each from 1 (the worst) to 6 (the best). A response of higher quality is more \
helpful, more relevant to the instruction, more accurate, deeper, more creative and more \
detailed. A better response gets a higher score; give equal scores only to responses of \
equal quality. Their order and their length alone must not sway you.

# Instruction
{instruction}

# Responses
{responses}

# Output
One line for each response, in order:
Response <number>: <a score from 1 to 6>"""


@technique(
    result=Scores,
    parser=parse_scores,
    formatter=functools.partial(format_scores, label="Response"),
)
def quality_score(instruction: str, responses: list[str]) -> PromptProgram[Scores]:
    """Score each response to an instruction from 1 to 6 by its quality (Deita)."""
    if not responses:
        message = "quality_score: 'responses' is empty; there is nothing to score"
        raise InputError(message)
    content = PROMPT.format(
        count=count_of(len(responses), "response"),
        instruction=instruction.strip(),
        responses=numbered("Response", responses),
    )
    return scoring_program(content, len(responses), instruction, "Response")
