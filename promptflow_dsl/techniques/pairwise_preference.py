"""Pairwise preference: which of two responses to an instruction is better, and why.

A judge that sees two responses tends to favour one position. With ``both_orders=True``
the judge is asked twice, with the responses in the order given and then swapped; the
verdict stands only when the two agree, and becomes ``"tie"`` when they do not. The reason
then records both answers.

Input columns: ``instruction``, ``response_a``, ``response_b``. Output columns:
``preferred`` (``"a"``, ``"b"`` or ``"tie"``), ``reason``, ``model_name``.
References: Zheng et al., *Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena*,
arXiv 2306.05685 (2023), on position bias and swapping; Cui et al., *UltraFeedback*,
arXiv 2310.01377 (2023), whose ratings make preference pairs.

>>> pairwise_preference.parse("Response A misreads the question, so my verdict is: [[B]]")
Preference(preferred='b', reason='Response A misreads the question')
>>> pairwise_preference.parse("**Preferred:** Response A\\nReason: it cites its source.")
Preference(preferred='a', reason='it cites its source.')
"""

from __future__ import annotations

import json
import re
from typing import Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field

from .._engine._driver import Sequence
from .._errors import ParseError
from .._program import Message, PromptProgram
from .._technique import technique

__all__ = [
    "Preference",
    "format_preference",
    "pairwise_preference",
    "parse_preference",
    "reconcile",
]

Verdict = Literal["a", "b", "tie"]

PROMPT = """\
# Task
You compare two responses to the same instruction and decide which one is better. The \
better response does what the instruction asks, is correct, honest and clear, and helps \
the person who asked more. Judge what the responses say: their order, their length and \
their style must not sway you. Say "tie" only when neither is better.

# Instruction
{instruction}

# Response A
{response_a}

# Response B
{response_b}

# Output
Write exactly:
Preferred: <A, B or tie>
Reason: <one or two sentences on why>"""


class Preference(BaseModel):
    """Which response the judge prefers, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    preferred: Verdict = Field(
        description='"a" if response A is better, "b" if response B is better, "tie" if neither is.'
    )
    reason: str = Field(description="One or two sentences on why.")


# What names a response ("Response A", "Output (b)", "Assistant A", a bare "A") and what
# says neither is better ("tie", "[[C]]" in MT-Bench's format, "both equally good").
_NOUN = r"(?:response|output|answer|assistant|option|candidate|model|completion)"
_TIE = (
    r"(?:(?:it'?s[ \t]+)?a[ \t]+tie|tie|draw|equal(?:ly)?(?:[ \t]+good)?|the[ \t]+same"
    r"|both(?:[ \t]+are)?(?:[ \t]+equally)?(?:[ \t]+good)?|neither|none|no[ \t]+preference"
    rf"|(?:{_NOUN}[ \t]*)?a[ \t]+and[ \t]+(?:{_NOUN}[ \t]+)?b[ \t]+are[ \t]+"
    r"(?:equal(?:ly)?|the same))"
)
_CHOICE = rf"(?:{_NOUN}[ \t]*)?\(?(?P<ab>[ab])\)?(?![\w'’])"
_VALUE = rf"[*_`\"'\[ \t]*(?:(?P<tie>{_TIE})(?![\w'’])|{_CHOICE})[*_`\"'\] \t]*"
_LABELLED = re.compile(
    r"(?:(?<![*_`])[*_`]+)?\b(?:final[ \t]+)?"
    r"(?:preferred(?:[ \t]+(?:response|output|answer))?|preference|winner|verdict|choice"
    r"|better[ \t]+(?:response|output|answer|one)|decision|answer)\b"
    rf"(?:[ \t]+is)?[*_` \t]*[:=][*_` \t]*{_VALUE}",
    re.IGNORECASE,
)
_LABEL_ONLY = re.compile(
    r"^(?:[^\w\n]|_)*(?:final[ \t]+)?(?:preferred|preference|winner|verdict|choice|decision)\b"
    r"[^\n:=]{0,20}[:=]",
    re.IGNORECASE | re.MULTILINE,
)
_BRACKETS = re.compile(r"\[\[[ \t]*(?:(?P<ab>[ab])|(?P<tie>c|tie))[ \t]*\]\]", re.IGNORECASE)
_ALONE = re.compile(rf"\A{_VALUE}[.!]?[ \t]*(?:\n|\Z)", re.IGNORECASE)  # on stripped text
_PROSE = re.compile(
    rf"\b{_NOUN}[ \t]*\(?(?P<ab>[ab])\)?[ \t]+(?:is|was|seems|looks|appears)[ \t]+(?:\w+[ \t]+)"
    r"{0,2}?(?:better|preferred|preferable|superior|stronger|the[ \t]+(?:winner|better))\b"
    rf"|\b(?:i[ \t]+)?(?:prefer|choose|pick|select|favou?r)[ \t]+{_NOUN}[ \t]*\(?(?P<ab2>[ab])\)?"
    r"(?![\w'’])"
    r"|(?P<tie>\bit'?s[ \t]+a[ \t]+tie\b|\bneither[ \t]+(?:response[ \t]+)?is[ \t]+better\b"
    r"|\b(?:both|the[ \t]+two)[ \t]+(?:responses[ \t]+)?are[ \t]+(?:about[ \t]+)?equally\b)",
    re.IGNORECASE,
)
_REASON = re.compile(
    r"(?:^[ \t>#*_\-]*|(?<=[.;|,)\]])[ \t]*(?:(?<![*_])[*_]+)?)"
    r"(?:reason(?:ing)?|rationale|explanation|justification|why)s?[*_ \t]*[:\-–—][*_]*[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_VERDICT_LINE = re.compile(rf"^[ \t>#*_\-]*{_LABELLED.pattern}", re.IGNORECASE | re.MULTILINE)
_FENCED = re.compile(r"```[a-zA-Z]*[ \t]*\n(.*?)```", re.DOTALL)
_SEPARATORS = " \t\n\r:-–—|,;"
_LEAD_IN = re.compile(r"[^.!?\n,;:]*\Z")
_KEYS = ("preferred", "preference", "winner", "verdict", "choice", "better", "answer")
_REASON_KEYS = ("reason", "reasoning", "rationale", "explanation", "justification")


def _fail(text: str, why: str) -> NoReturn:
    message = f"no usable verdict: {why}"
    raise ParseError(message, raw_text=text, expected='"Preferred: A", "B" or "tie", and a reason')


def _verdict(match: re.Match[str]) -> Verdict:
    groups = match.groupdict()
    if groups.get("tie"):
        return "tie"
    letter = groups.get("ab") or groups.get("ab2") or ""
    return "a" if letter.lower() == "a" else "b"


def _one(matches: list[re.Match[str]], text: str) -> re.Match[str] | None:
    """The first match, provided every match gives the same verdict."""
    if len({_verdict(m) for m in matches}) > 1:
        _fail(text, "it names more than one verdict")
    return matches[0] if matches else None


def _from_json(text: str) -> Preference | None:
    """The verdict of a JSON object: the whole reply, or a fenced block or an object in
    prose when nothing outside it gives a verdict (JSON quoted in a reason is not one)."""
    spans = [m.span(1) for m in _FENCED.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    spans += [(start, end + 1)] if 0 <= start < end else []
    for begin, stop in [(0, len(text)), *spans]:
        outside = text[:begin] + "\n" + text[stop:]
        if (begin, stop) != (0, len(text)) and (
            _LABELLED.search(outside) or _BRACKETS.search(outside)
        ):
            continue
        try:
            value = json.loads(text[begin:stop])
        except (ValueError, RecursionError):
            continue
        keyed = (
            {str(k).strip().lower(): v for k, v in value.items()} if isinstance(value, dict) else {}
        )
        choice = next((keyed[k] for k in _KEYS if k in keyed), None)
        if choice is None:
            continue
        found = _ALONE.match(choice.strip()) if isinstance(choice, str) else None
        if found is None:
            _fail(text, f"the JSON verdict {choice!r} is not A, B or tie")
        reason = next((keyed[k] for k in _REASON_KEYS if k in keyed), "")
        reason = "" if reason is None else reason if isinstance(reason, str) else json.dumps(reason)
        return Preference(preferred=_verdict(found), reason=reason.strip())
    return None


def parse_preference(text: str) -> Preference:
    """The verdict and the reason in a judge's reply.

    Reads, in this order: a JSON object (``{"preferred": "A", "reason": "..."}``); a
    labelled verdict (``Preferred: A``, ``**Winner:** Response B``, ``Final verdict:
    tie``); MT-Bench's ``[[A]]``, ``[[B]]`` or ``[[C]]`` (a tie); a verdict alone on the first
    line (``B``, ``**Response A**``, ``Tie.``); a sentence that states it (``Response B is
    better``, ``I prefer Output (a)``, ``It's a tie``). The part after a ``Reason:`` label
    is only searched last. The reason follows its label, else it is the rest of the reply.
    Two different verdicts at the same level, or none, is a :class:`ParseError`.
    """
    found = _from_json(text) if "{" in text else None
    if found is not None:
        return found
    label = _REASON.search(text)
    if label is not None:
        after = _VERDICT_LINE.search(text, label.end())
        stop = after.start() if after else len(text)
        parts = [text[: label.start()], text[stop:]]  # what is not the reason
        reason: str | None = text[label.end() : stop].strip()
    else:
        parts, reason = [text], None
    for pattern in (_LABELLED, _BRACKETS):
        match = _one([m for part in parts for m in pattern.finditer(part)], text)
        if match is not None:
            break
    else:
        match = _ALONE.match(text.strip())
        if match is None:
            match = _one([m for part in parts for m in _PROSE.finditer(part)], text)
            if match is not None and reason is None:
                return Preference(preferred=_verdict(match), reason=text.strip())
    if match is None:
        match = _one([*_LABELLED.finditer(text)], text) or _one([*_BRACKETS.finditer(text)], text)
    if match is None:
        if _LABEL_ONLY.search(text):
            _fail(text, "the verdict label names neither A, B nor a tie")
        _fail(text, "it names no verdict")
    if reason is None:
        before = match.string[: match.start()]
        lead = _LEAD_IN.search(before)
        if lead and len(lead.group().split()) <= 4:  # "..., so my verdict: [[B]]"
            before = before[: lead.start()].rstrip(_SEPARATORS)
        reason = (before + match.string[match.end() :]).strip(_SEPARATORS)
        reason = reason.lstrip(_SEPARATORS + ".").strip()
    return Preference(preferred=_verdict(match), reason=reason)


def format_preference(result: Preference) -> str:
    """The reply the prompt asks for (the parser's inverse)."""
    shown = {"a": "A", "b": "B", "tie": "tie"}[result.preferred]
    return f"Preferred: {shown}\nReason: {result.reason}".rstrip()


_SWAPPED: dict[str, Verdict] = {"a": "b", "b": "a", "tie": "tie"}


def reconcile(first: Preference, swapped: Preference) -> Preference:
    """One verdict from two askings, the second with the responses swapped.

    The verdict stands when both agree (the second read back in the original labels);
    otherwise it is ``"tie"``. The reason records both answers.

    >>> reconcile(Preference(preferred="a", reason="A is right."),
    ...           Preference(preferred="a", reason="A is clearer.")).preferred
    'tie'
    """
    second = _SWAPPED[swapped.preferred]
    preferred = first.preferred if first.preferred == second else "tie"
    reason = (
        f"A shown first: preferred {first.preferred}. {first.reason}\n"
        f"B shown first: preferred {second} (that reply calls response B 'A'). "
        f"{swapped.reason}"
    )
    return Preference(preferred=preferred, reason=reason.strip())


def _compare(instruction: str, response_a: str, response_b: str) -> PromptProgram[Preference]:
    content = PROMPT.format(
        instruction=instruction.strip(),
        response_a=response_a.strip(),
        response_b=response_b.strip(),
    )
    return PromptProgram(
        Preference,
        messages=(Message(role="user", content=content),),
        parser=parse_preference,
        formatter=format_preference,
        subject=instruction,
    )


@technique(result=Preference, parser=parse_preference, formatter=format_preference)
def pairwise_preference(
    instruction: str, response_a: str, response_b: str, *, both_orders: bool = False
) -> Sequence:
    """Say which of two responses to an instruction is better, and why."""
    first = yield _compare(instruction, response_a, response_b)
    if not both_orders:
        return first
    swapped = yield _compare(instruction, response_b, response_a)
    return reconcile(first, swapped)
