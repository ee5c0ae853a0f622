"""PromptProgram: the value a technique builds. Building one calls no model.

A program is either a chat (``messages``) or a raw completion prompt (``prompt``), plus
the result type, how text decodes into it, and the technique's decoding defaults.

>>> from pydantic import BaseModel
>>> class Answer(BaseModel):
...     text: str
>>> program = PromptProgram(Answer, messages=({"role": "user", "content": "Hi"},))
>>> program.is_raw, program.render()
(False, [{'role': 'user', 'content': 'Hi'}])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypedDict, TypeVar, cast

from pydantic import BaseModel

from ._errors import ParseError

__all__ = ["Decoding", "Message", "PromptProgram"]

R = TypeVar("R", bound=BaseModel)
Decoding = Literal["structured", "text"]


class Message(TypedDict):
    """One chat message."""

    role: str
    content: str


@dataclass(frozen=True)
class PromptProgram(Generic[R]):
    """What to send, what comes back, and how to read it."""

    result_type: type[R]
    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    parser: Callable[[str], R] | None = None
    formatter: Callable[[R], str] | None = None
    decoding: Decoding = "structured"
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    subject: str = field(default="", compare=False)
    """The text inputs the prompt was built from (the offline model writes about them)."""
    sizes: Mapping[str, int] = field(default_factory=dict, hash=False, compare=False)
    """How many items the prompt asks for in a list field (the offline model makes that many)."""

    def __post_init__(self) -> None:
        if (self.prompt is None) == (not self.messages):
            message = "a PromptProgram has either messages or a raw prompt, not both or neither"
            raise ValueError(message)
        if self.prompt is not None and self.parser is None:
            message = "a raw completion prompt needs a text parser"
            raise ValueError(message)

    @property
    def is_raw(self) -> bool:
        """True for a raw completion prompt (sent to the text-completion endpoint)."""
        return self.prompt is not None

    def render(self) -> list[Message] | str:
        """The messages (copied) or the raw prompt, exactly as they will be sent."""
        if self.prompt is not None:
            return self.prompt
        return [Message(role=m["role"], content=m["content"]) for m in self.messages]

    def text(self) -> str:
        """Everything the model will read, as one string (for estimates and fabrication)."""
        if self.prompt is not None:
            return self.prompt
        return "\n".join(m["content"] for m in self.messages)

    def parse(self, text: str, *, truncated: bool = False) -> R:
        """Decode a text reply with the technique's parser.

        *truncated* says the reply was cut off by the length limit; parsers that take a
        ``truncated`` keyword decide what that means (the bootstrap parser drops it all).
        """
        if self.parser is None:
            message = f"{self.result_type.__name__} has no text parser; use a structured mode"
            raise ParseError(message, raw_text=text, expected="a structured reply")
        if truncated and _takes_truncated(self.parser):
            return cast("Callable[..., R]", self.parser)(text, truncated=True)
        return self.parser(text)


def _takes_truncated(parser: Callable[..., Any]) -> bool:
    try:
        return "truncated" in inspect.signature(parser).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False
