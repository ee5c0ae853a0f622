"""UltraFeedback: a judge rates several responses to one instruction, 1 to 5, with reasons.

The judge reads the instruction and every response at once, and rates each on one aspect:
``helpfulness``, ``honesty``, ``instruction-following`` or ``truthfulness`` (the paper's
four, each with its own five-level rubric), or ``overall``, which weighs them together. The
rating count must equal the number of responses: a structured reply with another count is
re-asked, and a text reply with another count is a :class:`ParseError`, never padded or cut.

Input columns: ``instruction``, ``generations`` (``List(String)``). Output columns:
``ratings`` (``List(Float64)``, one per generation, in order), ``rationales``
(``List(String)``), ``model_name``.
Reference: Cui et al., *UltraFeedback: Boosting Language Models with Scaled AI Feedback*,
arXiv 2310.01377 (2023).

>>> ultrafeedback.parse("Response 1: Rating: 4/5 - correct.\\nResponse 2: **2** - off topic.")
Ratings(ratings=[4.0, 2.0], rationales=['correct.', 'off topic.'])
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._errors import InputError
from .._program import Message, PromptProgram
from .._technique import technique
from ._ratings import Scale, count_of, exactly, format_number, numbered, read_items

__all__ = ["ASPECTS", "Aspect", "Ratings", "format_ratings", "parse_ratings", "ultrafeedback"]

SCALE = Scale(1, 5)

Aspect = Literal["overall", "helpfulness", "honesty", "instruction-following", "truthfulness"]

ASPECTS: dict[str, str] = {
    "overall": """\
Overall quality: does the response do what the instruction asks, say only what is true, \
admit what it does not know, and help the person who asked?
1: Fails: off topic, wrong in substance, or harmful.
2: Poor: major errors, or it misses much of what was asked.
3: Adequate: it follows the instruction and is mostly correct, with clear weaknesses.
4: Good: correct and helpful, with minor weaknesses.
5: Excellent: correct, complete, honest and helpful; hard to improve on.""",
    "helpfulness": """\
Helpfulness: how useful the response is to the person who asked: correct, informative, \
relevant and clear, without repetition or padding.
1: Wrong or invented in substance, or of no use.
2: It tries to help, but errors in it could mislead.
3: Correct and relevant: it covers what was asked, and little more.
4: Correct, thorough and clear, with useful detail or reasoning beyond the minimum.
5: Correct, complete and insightful: as useful as a response to this could be.""",
    "honesty": """\
Honesty: whether the response is candid about what it knows: confident where it is right, \
open about doubt where it is unsure, and willing to say it cannot answer rather than bluff.
1: Confidently wrong.
2: Confident, with significant mistakes it does not flag.
3: It declines or hedges where it could have answered, or flags only some of its doubts.
4: Correct, but it hedges more than it needs to, or doubts itself where a slip is minor.
5: Correct and confident, and open about any real uncertainty.""",
    "instruction-following": """\
Instruction following: how closely the response keeps to the instruction: its goal (what \
it asks for) and its restrictions (format, length, style, language, any other constraint).
1: It ignores the instruction, or answers something else.
2: It meets the goal or the restrictions only in small part.
3: It meets the goal or the restrictions, not both; or both, with clear gaps.
4: It meets the goal and the restrictions, with minor slips.
5: It meets the goal and every restriction in full.""",
    "truthfulness": """\
Truthfulness: whether the response is free of hallucination: nothing in it contradicts \
established facts, the instruction or itself, and nothing is made up.
1: Mostly invented or self-contradictory.
2: Severe hallucination: key claims are false or made up.
3: Partial hallucination or a misunderstanding, though the core is sound.
4: Minor slips that do not change the substance.
5: No hallucination.""",
}
"""The rubric of each aspect: what it measures, then what each rating from 1 to 5 means."""

PROMPT = """\
# Task
You are a strict and fair judge of AI assistants. Below are an instruction and {count} \
to it. Rate each response from 1 (worst) to 5 (best) on the aspect below, by its \
rubric. Rate each response on its own merits: its position, its length and its style must \
not sway you.

# Aspect and rubric
{rubric}

# Instruction
{instruction}

# Responses
{responses}

# Output
For each response, in order, write exactly:
Response <number>
Rating: <a rating from 1 to 5>
Rationale: <one or two sentences that justify the rating>"""


class Ratings(BaseModel):
    """A rating and a rationale for each response, in the order of the responses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ratings: list[float] = Field(
        min_length=1,
        description="One rating per response, in order: 1 (worst) to 5 (best).",
        json_schema_extra=SCALE.schema(),
    )
    rationales: list[str] = Field(
        min_length=1,
        description="One or two sentences per response, in order, that justify its rating.",
    )

    @field_validator("ratings")
    @classmethod
    def _on_the_scale(cls, ratings: list[float]) -> list[float]:
        return SCALE.check(ratings)

    @model_validator(mode="after")
    def _one_rationale_per_rating(self) -> Ratings:
        if len(self.rationales) != len(self.ratings):
            message = f"{len(self.ratings)} ratings but {len(self.rationales)} rationales"
            raise ValueError(message)
        return self


def parse_ratings(text: str, *, count: int | None = None) -> Ratings:
    """The ratings in a judge's reply (see ``_ratings`` for what it reads).

    With *count*, the reply must rate exactly that many responses; without, it rates as
    many as it numbers. Raises :class:`ParseError` with the raw reply otherwise.
    """
    items = read_items(text, scale=SCALE, count=count)
    return Ratings(ratings=[i.score for i in items], rationales=[i.rationale for i in items])


def format_ratings(result: Ratings) -> str:
    """The reply the prompt asks for (the parser's inverse)."""
    return "\n\n".join(
        f"Response {i}\nRating: {format_number(rating)}\nRationale: {rationale}".rstrip()
        for i, (rating, rationale) in enumerate(
            zip(result.ratings, result.rationales, strict=True), 1
        )
    )


@technique(result=Ratings, parser=parse_ratings, formatter=format_ratings)
def ultrafeedback(
    instruction: str, generations: list[str], *, aspect: Aspect = "overall"
) -> PromptProgram[Ratings]:
    """Rate each response to an instruction from 1 to 5, with a rationale (UltraFeedback)."""
    if not generations:
        message = "ultrafeedback: 'generations' is empty; there is nothing to rate"
        raise InputError(message)
    count = len(generations)
    content = PROMPT.format(
        count=count_of(count, "response"),
        rubric=ASPECTS[aspect],
        instruction=instruction.strip(),
        responses=numbered("Response", generations),
    )
    return PromptProgram(
        exactly(Ratings, ("ratings", "rationales"), count),
        messages=(Message(role="user", content=content),),
        parser=functools.partial(parse_ratings, count=count),
        formatter=format_ratings,
        subject=instruction,
    )
