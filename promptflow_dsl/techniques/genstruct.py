"""Genstruct: a user question and an assistant answer grounded in a titled document.

Genstruct-7B was trained on a raw text format, so the default path is a raw completion
prompt sent to the text-completion endpoint (``/v1/completions``), never a chat template.
The model continues after ``[[[User]]]`` with the question, then ``[[[Assistant]]]`` and the
answer. A chat model can use a structured mode instead (``Model(..., mode="tools")``),
which sends the same text as one user message and asks for the result type.

Input columns: ``title``, ``content``. Output columns: ``user``, ``assistant``, ``model_name``.
References: NousResearch/Genstruct-7B (2024); Cui and Wang, *Ada-Instruct: Adapting
Instruction Generators for Complex Reasoning*, arXiv 2310.04484 (2023).

>>> genstruct.parse("How do tides work?\\n\\n[[[Assistant]]] The moon pulls the sea.")
UserAssistantPair(user='How do tides work?', assistant='The moon pulls the sea.')
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .._errors import ParseError
from .._technique import technique

__all__ = ["UserAssistantPair", "format_user_assistant", "genstruct", "parse_user_assistant"]

USER, ASSISTANT, TITLE = "[[[User]]]", "[[[Assistant]]]", "[[[Title]]]"

PROMPT = (
    "[[[Title]]] {title}\n[[[Content]]] {content}\n\nThe following is an interaction between "
    "a user and an AI assistant that is related to the above text.\n\n[[[User]]] "
)


class UserAssistantPair(BaseModel):
    """A user turn and the assistant's reply."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str = Field(description="The user's question or request about the text.")
    assistant: str = Field(description="The assistant's answer, grounded in the text.")


def parse_user_assistant(text: str) -> UserAssistantPair:
    """Split a continuation at ``[[[Assistant]]]``; tolerate an echoed ``[[[User]]]``.

    The answer ends at a following ``[[[User]]]`` or ``[[[Title]]]`` turn. No assistant
    marker, or an empty side, is a :class:`ParseError`: never a silent null.
    """
    user, marker, rest = text.partition(ASSISTANT)
    if not marker:
        message = f"no {ASSISTANT} marker in the reply"
        raise ParseError(message, raw_text=text, expected=f"the user turn, then {ASSISTANT}")
    user = user.rpartition(USER)[2].strip()
    ends = [i for i in (rest.find(USER), rest.find(TITLE)) if i >= 0]
    assistant = rest[: min(ends)].strip() if ends else rest.strip()
    if not user or not assistant:
        side = "user" if not user else "assistant"
        message = f"the {side} turn is empty"
        raise ParseError(message, raw_text=text, expected="a non-empty user and assistant turn")
    return UserAssistantPair(user=user, assistant=assistant)


def format_user_assistant(pair: UserAssistantPair) -> str:
    """The continuation Genstruct-7B writes for a pair (the parser's inverse)."""
    return f"{pair.user}\n\n{ASSISTANT} {pair.assistant}"


@technique(result=UserAssistantPair, parser=parse_user_assistant, formatter=format_user_assistant)
def genstruct(title: str, content: str) -> str:
    """Generate a user question and an assistant answer grounded in a document."""
    return PROMPT.format(title=title.strip(), content=content.strip())
