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
    ├── CredentialsInURLError     a model's api_base carries a user name or password
    └── RunAbortedError           the first calls of a run nearly all failed: it stopped early

Every error carries its context as attributes, and its message says what, where and what
to do. API keys never appear in any message: every error masks the known secrets (see
``_secrets``) in its message and raw reply when it is made.

>>> err = ParseError("no instruction found", raw_text="???", expected="a numbered list")
>>> isinstance(err, InvalidReplyError), err.raw_text
(True, '???')
"""

from __future__ import annotations

from ._secrets import scrub

__all__ = [
    "CompositionError",
    "CredentialsInURLError",
    "InvalidReplyError",
    "MissingColumnError",
    "ParseError",
    "PromptflowError",
    "ProviderError",
    "RunAbortedError",
    "TemplateError",
    "ValidationExhaustedError",
]


class PromptflowError(Exception):
    """The root of every error this library raises on purpose."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(scrub(a) if isinstance(a, str) else a for a in args))

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
        self.raw_text = scrub(raw_text) if raw_text is not None else None


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


class CredentialsInURLError(PromptflowError, ValueError):
    """A model's ``api_base`` carries credentials; keys belong in ``api_key`` or the
    provider's environment variable, never in a URL that is logged and stored."""


class RunAbortedError(PromptflowError):
    """A run stopped early because its first calls nearly all failed (a wrong key, a wrong
    model name, a server that is down), rather than spend its way through the dataset."""
