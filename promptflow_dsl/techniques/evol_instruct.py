"""Evol-Instruct: rewrite instructions, round after round, into harder or rarer ones.

Each round picks one of the paper's five mutations at random (reproducibly, from ``seed``,
the instruction and the round, never from the row's position), asks the model to rewrite
the current instruction, and optionally applies *elimination evolving*: a rewrite that
fails one of the paper's four rules does not replace the instruction, the row records the
rule, and the next round evolves the previous instruction again.

Input column: ``instruction``. Output columns: ``evolved_instruction`` (or
``evolved_instructions``, a list, with ``store_evolutions``; the original first with
``include_original_instruction``), ``answer`` / ``answers`` with ``generate_answers``,
``mutations`` and ``eliminations`` (one entry per round), and ``model_name``.
Reference: Xu et al., *WizardLM: Empowering Large Language Models to Follow Complex
Instructions*, arXiv 2304.12244 (2023).

>>> evol_instruct.parse("#Rewritten Prompt#:\\n  Sort the list in O(n log n) time.")
EvolvedInstruction(evolved_instruction='Sort the list in O(n log n) time.', \
evolved_instructions=None, answer=None, answers=None, mutations=[], eliminations=[])
"""

from __future__ import annotations

import re
from collections.abc import Generator, Mapping
from typing import Annotated, Any, NoReturn

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
from .text_generation import text_generation

__all__ = [
    "COPIED_PHRASES",
    "MUTATION_TEMPLATES",
    "EqualityVerdict",
    "EvolvedInstruction",
    "Rewrite",
    "choose_mutation",
    "elimination_rule",
    "evol_instruct",
    "parse_equality",
    "parse_evolved_instruction",
    "parse_rewrite",
]

_DEPTH = """\
You make prompts harder. Rewrite the given prompt so that capable AI assistants find it \
more demanding, while a person can still understand and answer it.

How: {method}

Rules:
- Keep everything the given prompt contains: its input, and any non-text parts such as \
tables or code, exactly as they are.
- Make it at most 20 words longer than the given prompt.
- Reply with the rewritten prompt alone: no title, label or comment.

Given prompt:
{{instruction}}"""

MUTATION_TEMPLATES: dict[str, str] = {
    "add_constraints": _DEPTH.format(method="add exactly one new constraint or requirement."),
    "deepen": _DEPTH.format(
        method="where the prompt asks about a particular issue, widen and deepen the inquiry."
    ),
    "concretize": _DEPTH.format(method="replace general concepts with more specific ones."),
    "increase_reasoning": _DEPTH.format(
        method="where a few simple steps would solve the prompt, make it ask explicitly for "
        "reasoning in several steps."
    ),
    "breadth": """\
You invent prompts. Taking the given prompt as inspiration, write a brand-new prompt in \
the same domain that is rarer, less common, than the given one.

Rules:
- Keep about the same length and difficulty as the given prompt.
- The new prompt must be reasonable, and a person must be able to understand and answer it.
- If the given prompt has an input, a table or code, give the new prompt one of its own.
- Reply with the new prompt alone: no title, label or comment.

Given prompt:
{instruction}""",
}
"""The paper's five mutations: four in depth, one in breadth. ``{instruction}`` is filled in."""

_EQUALITY = """\
Here are two instructions. Are they equal: the same constraints and requirements, and \
the same depth and breadth of inquiry?

First instruction:
{first}

Second instruction:
{second}

Answer with "Equal" or "Not Equal" and nothing else."""

COPIED_PHRASES = (
    "given prompt",
    "rewritten prompt",
    "created prompt",
    "#rewritten prompt#",
    "#given prompt#",
    "#created prompt#",
)
"""Wording of the rewriting prompt that must not leak into an evolved one (rule 4)."""


class Rewrite(BaseModel):
    """One rewrite of an instruction (what the model is asked for each round)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rewritten_prompt: str = Field(description="The rewritten prompt, alone, with no label.")


class EqualityVerdict(BaseModel):
    """Whether two instructions are equal (no information gain)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    equal: bool = Field(description="True if the two instructions are equal.")


class EvolvedInstruction(BaseModel):
    """The evolution of one instruction: the result, each round's choice and fate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    evolved_instruction: str = Field(description="The instruction after the last round.")
    evolved_instructions: list[str] | None = Field(
        default=None, description="Each accepted evolution in order (with store_evolutions)."
    )
    answer: str | None = Field(default=None, description="An answer to evolved_instruction.")
    answers: list[str] | None = Field(
        default=None, description="An answer to each of evolved_instructions."
    )
    mutations: list[str] = Field(default_factory=list, description="The mutation of each round.")
    eliminations: list[str | None] = Field(
        default_factory=list, description="Per round: the elimination rule it failed, or null."
    )


_KIND = r"(?:rewritten|created|new|evolved|given)\s+(?:prompt|instruction)\b"
_LABEL = re.compile(
    # A label stands alone before a colon or a line break ("#Rewritten Prompt#:",
    # "**New Prompt**"), or is a sentence that introduces one ("Here is the rewritten
    # prompt:"); words that only start like one ("New prompts are rare.") are the prompt.
    rf"^\s*(?:[#*_\s]*(?:the\s+|my\s+)?{_KIND}[#*_]*[^\S\n]*(?:[:\n]|\Z)[#*_]*"
    rf"|here(?:\s+is|'s|’s)\s+(?:the\s+|my\s+|an?\s+|your\s+)?{_KIND}[^\n:]*:)[ \t]*",
    re.IGNORECASE,
)


def parse_rewrite(text: str) -> Rewrite:
    """The rewritten prompt, without echoed headers or labels ("#Rewritten Prompt#:", ...)."""
    body = text
    while (match := _LABEL.match(body)) and match.end() > 0:
        body = body[match.end() :]
    body = body.strip()
    if not body:
        message = "no rewritten prompt in the reply"
        raise ParseError(message, raw_text=text, expected="the rewritten prompt")
    return Rewrite(rewritten_prompt=body)


def parse_evolved_instruction(text: str) -> EvolvedInstruction:
    """One rewrite read from text, as an :class:`EvolvedInstruction`."""
    return EvolvedInstruction(evolved_instruction=parse_rewrite(text).rewritten_prompt)


# The equality verdict is read from words and marks; markdown, quotes, hyphens and slashes
# only separate words ("not-equal", "**Equal**", "Equal/Not Equal").
_VERDICT_TOKEN = re.compile(r"[^\W_]+|[.!?;,:]|\n[^\S\n]*\n|\n")
_SENTENCE_ENDS = frozenset({".", "!", "?", ";", "\n\n"})
_CLAUSE_ENDS = frozenset({",", ":"})
_EQUAL = "equal"
_UNEQUAL = frozenset({"unequal", "inequal", "nonequal"})
_NEGATIONS = frozenset("not no non un never cannot isnt arent wasnt werent dont doesnt".split())
_ANSWERS = {"yes": True, "no": False}
_LABELS = frozenset("answer final verdict result output judgement judgment".split())
_NEGATION_REACH = 3
"""How many words before "equal" a negation may stand ("are not really quite equal")."""


def _verdict_tokens(text: str) -> list[str]:
    # upper() first, so that every case variant of a reply reads the same: casefold() alone
    # keeps "ınequal" apart from "INEQUAL", its upper case.
    folded = re.sub(r"['’]", "", text.upper().casefold())
    return ["\n\n" if token.count("\n") > 1 else token for token in _VERDICT_TOKEN.findall(folded)]


def _sentences(tokens: list[str]) -> list[tuple[list[str], str]]:
    """The sentences that hold a word, each with the mark that ends it ("" at the end)."""
    sentences: list[tuple[list[str], str]] = []
    current: list[str] = []
    for token in [*tokens, ""]:
        if token in _SENTENCE_ENDS or not token:
            if _words(current):
                sentences.append((current, token))
            current = []
        else:
            current.append(token)
    return sentences


def _clauses(sentence: list[str]) -> list[list[str]]:
    clauses: list[list[str]] = [[]]
    for token in sentence:
        if token in _CLAUSE_ENDS or token == "\n":
            clauses.append([])
        else:
            clauses[-1].append(token)
    return clauses


def _reading(clause: list[str], at: int, text: str) -> bool:
    """Whether the "equal" word at ``clause[at]`` says equal, given the negations before it."""
    reach = max(0, at - _NEGATION_REACH)
    negations = (clause[at] in _UNEQUAL) + sum(w in _NEGATIONS for w in clause[reach:at])
    if negations > 1 or any(w in _NEGATIONS for w in clause[:reach]):
        _no_verdict(text, "it negates the verdict more than once, or from afar")
    return negations == 0


def _claims(sentence: list[str], text: str) -> set[bool]:
    """What the sentence says of equality: one reading per "equal" word it holds."""
    words = [token for token in sentence if token != "\n"]
    return {
        _reading(clause, at, text)
        for clause in _clauses(words)
        for at, word in enumerate(clause)
        if word == _EQUAL or word in _UNEQUAL
    }


def _words(tokens: list[str]) -> set[str]:
    return {token for token in tokens if token.isalnum()}


def _answer(sentence: list[str]) -> bool | None:
    """A bare "yes" or "no" in the sentence (the judge answering "are they equal?")."""
    found = {
        _ANSWERS[clause[0]]
        for clause in _clauses(sentence)
        if len(clause) == 1 and clause[0] in _ANSWERS
    }
    return found.pop() if len(found) == 1 else None


def _opening(sentences: list[tuple[list[str], str]]) -> int:
    """The index of the first sentence that is more than a label ("**Answer**")."""
    return next(
        (i for i, (tokens, _) in enumerate(sentences) if _words(tokens) - _LABELS),
        0,
    )


def _no_verdict(text: str, why: str) -> NoReturn:
    message = f"the equality check gave no clear verdict: {why}"
    raise ParseError(message, raw_text=text, expected='"Equal" or "Not Equal"')


def parse_equality(text: str) -> EqualityVerdict:
    """The judge's verdict: the first sentence that says whether the two are equal.

    Case, spacing, markdown, quotes and a label such as "Answer:" do not matter. "equal"
    reads as not equal with a prefix ("unequal", "inequal", "non-equal") or a negation up
    to three words before it ("not equal", "aren't really equal"). A bare "yes" or "no"
    answers the judge's question in the opening sentence, or answers "Equal?" after it.
    A sentence that says both, negates twice, or negates from further away is a
    :class:`ParseError`, as is a reply with no verdict: never a guess.

    >>> parse_equality("**Unequal**: the second adds a constraint.")
    EqualityVerdict(equal=False)
    >>> parse_equality("Answer: Equal. Neither is harder, though the second is not shorter.")
    EqualityVerdict(equal=True)
    """
    sentences = _sentences(_verdict_tokens(text))
    opening = _opening(sentences)
    for index, (sentence, end) in enumerate(sentences):
        claims = _claims(sentence, text)
        if end == "?":  # a question claims nothing, unless a yes or no follows it
            after = sentences[index + 1][0] if index + 1 < len(sentences) else []
            answer = _answer(after)
            if len(claims) != 1 or answer is None:
                continue
            claims = {claim == answer for claim in claims} | _claims(after, text)
        elif index <= opening and (answer := _answer(sentence)) is not None:
            claims.add(answer)
        if len(claims) > 1:
            _no_verdict(text, "it says both equal and not equal")
        if claims:
            return EqualityVerdict(equal=claims.pop())
    _no_verdict(text, 'it says neither "Equal" nor "Not Equal"')


def elimination_rule(evolved: str, answer: str | None) -> str | None:
    """The first of the paper's rules 2-4 that the evolution fails, or None.

    >>> elimination_rule("Explain tides.", "Sorry, I cannot help with that.")
    'answer_is_apology'
    """
    if copies_wording(evolved, COPIED_PHRASES):
        return "copied_rewriting_prompt"
    if answer is not None:
        if is_apology(answer):
            return "answer_is_apology"
        if is_empty(answer):
            return "answer_is_empty"
    return None


def _rewrite(instruction: str, template: str) -> Generator[PromptProgram[Any], Any, str]:
    content = template.replace("{instruction}", instruction)
    rewrite = yield PromptProgram(
        Rewrite,
        messages=(Message(role="user", content=content),),
        parser=parse_rewrite,
        formatter=lambda r: r.rewritten_prompt,
        decoding="text",
        subject=instruction,
    )
    return rewrite.rewritten_prompt


def _eliminate(current: str, evolved: str) -> Generator[PromptProgram[Any], Any, Verdict]:
    """The paper's four rules, cheapest first: copied wording, then the equality judge,
    then an answer to the rewrite (kept, so ``generate_answers`` need not ask again)."""
    if (rule := elimination_rule(evolved, None)) is not None:
        return Verdict(rule)
    verdict = yield _equality(current, evolved)
    if verdict.equal:
        return Verdict("no_information_gain")
    answer = (yield text_generation.program(evolved)).generation
    return Verdict(elimination_rule(evolved, answer), answer)


def _equality(first: str, second: str) -> PromptProgram[EqualityVerdict]:
    return PromptProgram(
        EqualityVerdict,
        messages=(Message(role="user", content=_EQUALITY.format(first=first, second=second)),),
        parser=parse_equality,
        formatter=lambda v: "Equal" if v.equal else "Not Equal",
        decoding="text",
        params={"temperature": 0},
    )


def _outputs(attributes: Mapping[str, Any]) -> list[str]:
    plural = attributes["store_evolutions"]
    columns = ["evolved_instructions" if plural else "evolved_instruction"]
    if attributes["generate_answers"]:
        columns.append("answers" if plural else "answer")
    return [*columns, "mutations", "eliminations"]


@technique(
    result=EvolvedInstruction,
    parser=parse_evolved_instruction,
    formatter=lambda e: e.evolved_instruction,
    outputs=_outputs,
)
def evol_instruct(
    instruction: str,
    *,
    num_evolutions: Annotated[int, Field(ge=1)] = 1,
    store_evolutions: bool = False,
    generate_answers: bool = False,
    include_original_instruction: bool = False,
    mutation_templates: Mapping[str, str] = MUTATION_TEMPLATES,
    seed: int = 42,
    eliminate: bool = False,
) -> Sequence:
    """Evolve an instruction into a more complex or rarer one (WizardLM's Evol-Instruct)."""
    mutations = [
        choose_mutation(mutation_templates, seed=seed, instruction=instruction, round=round_)
        for round_ in range(num_evolutions)
    ]
    rounds = yield from evolve(
        instruction,
        [mutation_templates[mutation] for mutation in mutations],
        rewrite=_rewrite,
        check=_eliminate if eliminate else None,
    )
    kept = [r for r in rounds if r.elimination is None]
    current = kept[-1].text if kept else instruction
    stored = ([instruction] if include_original_instruction else []) + [r.text for r in kept]
    stored_answers = ([None] if include_original_instruction else []) + [r.answer for r in kept]
    if generate_answers:
        for i, (text, answer) in enumerate(zip(stored, stored_answers, strict=True)):
            if answer is None and (store_evolutions or i == len(stored) - 1):
                stored_answers[i] = (yield text_generation.program(text)).generation
    return EvolvedInstruction(
        evolved_instruction=current,
        evolved_instructions=stored if store_evolutions else None,
        answer=stored_answers[-1] if generate_answers and stored else None,
        answers=stored_answers if generate_answers and store_evolutions else None,
        mutations=mutations,
        eliminations=[r.elimination for r in rounds],
    )
