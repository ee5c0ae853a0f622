"""Evol-Quality: rewrite a response, round after round, into a better one.

Deita grades responses this way: each round asks the model to improve the response to an
instruction in one of five ways (more helpful, more relevant, deeper, more creative, more
detailed), a little at a time, so the rounds make responses of rising quality for one
instruction. The mutation of each round is random but fixed by ``seed``, the instruction,
the original response and the round, never by the row's position.

With ``eliminate``, a rewrite that fails one of these rules does not replace the response,
the row records the rule, and the next round rewrites the previous response again: it
copies the rewriting prompt's wording (``copied_rewriting_prompt``), changes nothing but
case and spacing (``unchanged``), says nothing but stop words (``response_is_empty``), or
is a short apology where the response was not (``response_is_apology``). The rules read
the text alone, so elimination makes no extra call.

Input columns: ``instruction``, ``response``. Output columns: ``evolved_response`` (or
``evolved_responses``, a list, with ``store_evolutions``; the original first with
``include_original_response``), ``mutations`` and ``eliminations`` (one entry per round),
and ``model_name``.
Reference: Liu et al., *What Makes Good Data for Alignment? A Comprehensive Study of
Automatic Data Selection in Instruction Tuning* (Deita), arXiv 2312.15685 (2023).

>>> evol_quality.parse("#Rewritten Response#:\\n  The moon's pull raises two tidal bulges.")
EvolvedResponse(evolved_response="The moon's pull raises two tidal bulges.", \
evolved_responses=None, mutations=[], eliminations=[])
"""

from __future__ import annotations

import functools
import re
from collections.abc import Generator, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from .._engine._driver import Sequence
from .._errors import ParseError
from .._program import Message, PromptProgram
from .._technique import technique
from ._evolution import (
    Verdict,
    choose_mutation,
    copies_wording,
    evolve,
    is_apology,
    is_empty,
)

__all__ = [
    "COPIED_PHRASES",
    "MUTATION_TEMPLATES",
    "EvolvedResponse",
    "ResponseRewrite",
    "evol_quality",
    "format_evolved_response",
    "parse_evolved_response",
    "parse_response_rewrite",
    "response_elimination_rule",
]

_REWRITE = """\
You improve answers. Rewrite the response an AI assistant gave to the given prompt so \
that it is better in one respect.

How: {method}

Rules:
- It must still answer the given prompt, and a person must be able to understand it.
- Keep what the response contains that is not plain text, such as tables or code, and \
everything the given prompt asks for.
- Do not pad it: add no more than 20 words to the response.
- Reply with the rewritten response alone: no title, label or comment.

Given prompt:
{{instruction}}

Given response:
{{response}}"""

MUTATION_TEMPLATES: dict[str, str] = {
    "helpfulness": _REWRITE.format(method="make it more helpful to the person who asked."),
    "relevance": _REWRITE.format(
        method="make it more relevant: keep closer to what the prompt asks, and answer it "
        "more directly."
    ),
    "depth": _REWRITE.format(
        method="make it deeper: go further into the reasons, mechanisms or consequences."
    ),
    "creativity": _REWRITE.format(
        method="make it more creative: a fresh angle, an apt example or a vivid phrasing."
    ),
    "details": _REWRITE.format(
        method="make it more detailed: add specific facts, figures, steps or examples."
    ),
}
"""The paper's five mutations. ``{instruction}`` and ``{response}`` are filled in."""

COPIED_PHRASES = ("given prompt", "given response", "rewritten response")
"""Wording of the rewriting prompt that must not leak into a rewritten response."""


class ResponseRewrite(BaseModel):
    """One rewrite of a response (what the model is asked for each round)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rewritten_response: str = Field(description="The rewritten response, alone, with no label.")


class EvolvedResponse(BaseModel):
    """The evolution of one response: the result, each round's choice and fate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    evolved_response: str = Field(description="The response after the last round.")
    evolved_responses: list[str] | None = Field(
        default=None, description="Each accepted evolution in order (with store_evolutions)."
    )
    mutations: list[str] = Field(default_factory=list, description="The mutation of each round.")
    eliminations: list[str | None] = Field(
        default_factory=list, description="Per round: the elimination rule it failed, or null."
    )


# A label is cut only where it is plainly one: "Rewritten response" (with markdown) ended by
# a colon or the line, or "Here is the improved answer:". A response that merely opens with
# "New answers show..." or "Here is the answer: 42" keeps its words.
_ADJECTIVE = r"(?:rewritten|improved|enhanced|revised|better|new|evolved|given)"
_NOUN = r"(?:response|answer)"
_LABEL = re.compile(
    rf"[#*_>\s]*(?:(?:the\s+|my\s+)?{_ADJECTIVE}\s+{_NOUN}[#*_]*[^\S\n]*(?=[:\n]|\Z)"
    rf"|here(?:\s+is|'s|’s)\s+(?:the\s+|my\s+|an?\s+|your\s+)?{_ADJECTIVE}\s+"
    rf"(?:version\s+of\s+the\s+)?{_NOUN}\b[^\n:]*(?=:)):?[#*_]*[^\S\n]*",
    re.IGNORECASE,
)


def parse_response_rewrite(text: str) -> ResponseRewrite:
    """The rewritten response, without echoed labels ("#Rewritten Response#:", ...).

    An empty reply, or one that is only a label, is a :class:`ParseError`.

    >>> parse_response_rewrite("**Improved answer:**\\nTides rise twice a day.")
    ResponseRewrite(rewritten_response='Tides rise twice a day.')
    """
    body = text
    while (match := _LABEL.match(body)) and match.end() > 0:
        body = body[match.end() :]
    body = body.strip()
    if not body:
        message = "no rewritten response in the reply"
        raise ParseError(message, raw_text=text, expected="the rewritten response")
    return ResponseRewrite(rewritten_response=body)


def parse_evolved_response(text: str) -> EvolvedResponse:
    """One rewrite read from text, as an :class:`EvolvedResponse`."""
    return EvolvedResponse(evolved_response=parse_response_rewrite(text).rewritten_response)


def format_evolved_response(result: EvolvedResponse) -> str:
    """The text of the evolved response (the parser's inverse)."""
    return result.evolved_response


def response_elimination_rule(evolved: str, previous: str) -> str | None:
    """The first rule a rewritten response fails, or None. No call is needed.

    A phrase or an apology that the previous response already held does not count: the
    rewrite kept it, it did not add it.

    >>> response_elimination_rule("Tides  rise twice a day.", "tides rise twice a day.")
    'unchanged'
    >>> response_elimination_rule("Sorry, I can't improve this.", "Tides rise twice a day.")
    'response_is_apology'
    """
    if copies_wording(evolved, COPIED_PHRASES) and not copies_wording(previous, COPIED_PHRASES):
        return "copied_rewriting_prompt"
    if _folded(evolved) == _folded(previous):
        return "unchanged"
    if is_empty(evolved):
        return "response_is_empty"
    if is_apology(evolved) and not is_apology(previous):
        return "response_is_apology"
    return None


def _folded(text: str) -> str:
    return " ".join(text.casefold().split())


_PLACEHOLDER = re.compile(r"\{(instruction|response)\}")


def _rewrite(
    instruction: str, response: str, template: str
) -> Generator[PromptProgram[Any], Any, str]:
    texts = {"instruction": instruction, "response": response}
    # One pass, so a response that holds "{instruction}" is not filled in again.
    content = _PLACEHOLDER.sub(lambda m: texts[m.group(1)], template)
    rewrite = yield PromptProgram(
        ResponseRewrite,
        messages=(Message(role="user", content=content),),
        parser=parse_response_rewrite,
        formatter=lambda r: r.rewritten_response,
        decoding="text",
        subject=response,
    )
    return rewrite.rewritten_response


def _eliminate(current: str, evolved: str) -> Generator[PromptProgram[Any], Any, Verdict]:
    return Verdict(response_elimination_rule(evolved, current))
    yield  # unreachable: it makes this a check, a sequence, that needs no call


def _outputs(attributes: Mapping[str, Any]) -> list[str]:
    plural = attributes["store_evolutions"]
    return ["evolved_responses" if plural else "evolved_response", "mutations", "eliminations"]


@technique(
    result=EvolvedResponse,
    parser=parse_evolved_response,
    formatter=format_evolved_response,
    outputs=_outputs,
)
def evol_quality(
    instruction: str,
    response: str,
    *,
    num_evolutions: Annotated[int, Field(ge=1)] = 1,
    store_evolutions: bool = False,
    include_original_response: bool = False,
    mutation_templates: Mapping[str, str] = MUTATION_TEMPLATES,
    seed: int = 42,
    eliminate: bool = False,
) -> Sequence:
    """Evolve a response to an instruction into a better one (Deita's Evol-Quality)."""
    mutations = [
        choose_mutation(
            mutation_templates, seed=seed, instruction=instruction, response=response, round=i
        )
        for i in range(num_evolutions)
    ]
    rounds = yield from evolve(
        response,
        [mutation_templates[mutation] for mutation in mutations],
        rewrite=functools.partial(_rewrite, instruction),
        check=_eliminate if eliminate else None,
    )
    kept = [r.text for r in rounds if r.elimination is None]
    stored = ([response] if include_original_response else []) + kept
    return EvolvedResponse(
        evolved_response=kept[-1] if kept else response,
        evolved_responses=stored if store_evolutions else None,
        mutations=mutations,
        eliminations=[r.elimination for r in rounds],
    )
