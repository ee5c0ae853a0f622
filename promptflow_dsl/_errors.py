"""The exceptions, all rooted at :class:`PromptflowError`.

::

    PromptflowError
    ├── CompositionError          a step needs a column that an earlier step removed
    ├── MissingColumnError        the input frame lacks a column the recipe needs
    ├── TemplateError             a prompt template names a variable with no value
    ├── InvalidReplyError         the reply could not be turned into the result type
    │   ├── ParseError            a text parser found no result (carries the raw text)
    │   └── ValidationExhaustedError   structured output failed validation on every re-ask
    ├── ProviderError             the provider call failed (HTTP status, timeout, auth, ...)
    ├── RunAbortedError           the first calls of a run nearly all failed: it stopped early
    └── StorageFullError          the disk is full: the cache cannot store a reply; the run stops

Every error carries its context as attributes, and its message says what, where and what
to do. API keys never appear in any message.

>>> err = ParseError("no instruction found", raw_text="???", expected="a numbered list")
>>> isinstance(err, InvalidReplyError), err.raw_text
(True, '???')
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CompositionError",
    "InvalidReplyError",
    "MissingColumnError",
    "ParseError",
    "PromptflowError",
    "ProviderError",
    "RunAbortedError",
    "StorageFullError",
    "TemplateError",
    "ValidationExhaustedError",
]


class PromptflowError(Exception):
    """The root of every error this library raises on purpose."""

    attempts: int = 1
    """How many calls were made before giving up (set by the engine)."""


class CompositionError(PromptflowError, ValueError):
    """Two steps do not fit together: raised by ``>>`` before anything runs."""

    def __init__(self, message: str, *, step: str, column: str) -> None:
        super().__init__(message)
        self.step = step
        self.column = column


class MissingColumnError(PromptflowError, KeyError):
    """The input frame lacks a column that a step of the recipe reads."""

    def __init__(self, *, step: str, column: str, existing: list[str]) -> None:
        self.step = step
        self.column = column
        self.existing = existing
        message = (
            f"step {step!r} needs column {column!r}, which the input does not have; "
            f"it has {existing}. Rename a column or map the input with "
            f".step(inputs={{...: {column!r}}})."
        )
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class TemplateError(PromptflowError, ValueError):
    """A prompt template uses a variable that was not given."""


class InvalidReplyError(PromptflowError):
    """The model replied, but the reply is not a valid result. ``raw_text`` keeps it."""

    def __init__(self, message: str, *, raw_text: str | None) -> None:
        super().__init__(message)
        self.raw_text = raw_text


class ParseError(InvalidReplyError, ValueError):
    """A pure text parser could not read a result from the text."""

    def __init__(self, message: str, *, raw_text: str, expected: str) -> None:
        super().__init__(f"{message} (expected {expected})", raw_text=raw_text)
        self.expected = expected


class ValidationExhaustedError(InvalidReplyError):
    """Structured output still failed validation after the allowed re-asks."""

    def __init__(self, message: str, *, raw_text: str | None, attempts: int) -> None:
        super().__init__(message, raw_text=raw_text)
        self.attempts = attempts


class ProviderError(PromptflowError):
    """The call to the provider failed. ``transient`` errors are worth retrying."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient
        self.retry_after = retry_after


class RunAbortedError(PromptflowError):
    """A run stopped early because its first calls nearly all failed (a wrong key, a wrong
    model name, a server that is down), rather than spend its way through the dataset."""


class StorageFullError(PromptflowError):
    """The reply cache could not store a reply: the disk is full, the file reached its size
    limit, or the disk refused the write. This stops a run rather than fail its rows: every
    further call would be paid for and lost. The replies stored so far stay, so the same
    run started again, once there is room, resumes where it stopped. ``path`` is the cache.
    """

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path
