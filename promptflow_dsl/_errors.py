"""The exceptions, all rooted at :class:`PromptflowError`.

::

    PromptflowError
    ├── CompositionError          a step needs a column that an earlier step removed
    ├── MissingColumnError        the input frame lacks a column the recipe needs
    ├── TemplateError             a prompt template names a variable with no value
    ├── AttributeValueError       a technique attribute of the wrong type or out of its range
    ├── InputError                an input the recipe cannot use
    │   ├── InputTypeError        a technique input of the wrong type (a list where text goes)
    │   ├── ReservedColumnError   an input column named like a bookkeeping column, not one
    │   └── InputFileError        an input file that cannot be read (names the file and line)
    ├── InvalidReplyError         the reply could not be turned into the result type
    │   ├── ParseError            a text parser found no result (carries the raw text)
    │   └── ValidationExhaustedError   structured output failed validation on every re-ask
    ├── ProviderError             the provider call failed (HTTP status, timeout, auth, ...)
    ├── BudgetExhaustedError      max_cost_usd is spent: no new call is issued
    ├── OutputLockedError         another run holds the output
    ├── OverrideError             a --set or --map that does not fit the recipe
    ├── RecipeFileError           a recipe file that is missing, fails to run, or has no recipe
    ├── StorageError              a file could not be written (a full disk, a size limit)
    │   └── StorageFullError      the cache cannot store a reply: the run stops
    ├── CredentialsInURLError     a model's api_base carries a user name or password
    ├── ModelSettingError         a Model setting it cannot have (an unknown mode)
    ├── EngineError               the chosen engine does not run this (a whole-frame step on Ray)
    └── RunAbortedError           the latest calls nearly all failed at the provider: it stopped

Warnings: :class:`ColumnOverwriteWarning` (a step writes over a column the input has).

Every error carries its context as attributes, and its message says what, where and what
to do. API keys never appear in any message: every error masks the known secrets (see
``_secrets``) in its message and raw reply when it is made.

>>> err = ParseError("no instruction found", raw_text="???", expected="a numbered list")
>>> isinstance(err, InvalidReplyError), err.raw_text
(True, '???')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._secrets import scrub

__all__ = [
    "AttributeValueError",
    "BudgetExhaustedError",
    "ColumnOverwriteWarning",
    "CompositionError",
    "InputError",
    "InputFileError",
    "InputTypeError",
    "CredentialsInURLError",
    "EngineError",
    "InvalidReplyError",
    "MissingColumnError",
    "ModelSettingError",
    "OutputLockedError",
    "OverrideError",
    "ParseError",
    "PromptflowError",
    "ProviderError",
    "RecipeFileError",
    "ReservedColumnError",
    "RunAbortedError",
    "StorageError",
    "StorageFullError",
    "TemplateError",
    "ValidationExhaustedError",
]


class PromptflowError(Exception):
    """The root of every error this library raises on purpose.

    Errors pickle with their context (a Ray worker's error reaches the driver whole):

    >>> import pickle
    >>> error = pickle.loads(pickle.dumps(ParseError("no list", raw_text="?", expected="1.")))
    >>> str(error), error.raw_text
    ('no list (expected 1.)', '?')
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(scrub(a) if isinstance(a, str) else a for a in args))

    def __reduce__(self) -> tuple[Any, ...]:
        # The subclasses take their context as keyword arguments, which pickle's default
        # (calling the class with ``args`` alone) would leave out.
        return (_rebuilt, (type(self), self.args, dict(vars(self))))

    attempts: int = 1
    """How many calls were made before giving up (set by the engine)."""
    usage: Any = None
    """What those calls used, a ``Usage`` (set by the engine), so a failed row records it."""


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
            f"it has {existing}. Rename a column, or read the input from another column: "
            f"--map {step}.PARAM=COLUMN on the command line, "
            f".step(inputs={{PARAM: COLUMN}}) in Python."
        )
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class TemplateError(PromptflowError, ValueError):
    """A prompt template uses a variable that was not given."""


class AttributeValueError(PromptflowError, ValueError):
    """A technique attribute has a value of the wrong type or out of its declared range
    (``num_instructions=0``): raised when a step is built or a technique is called."""

    def __init__(
        self, message: str, *, technique: str, name: str, value: object, reason: str
    ) -> None:
        super().__init__(message)
        self.technique = technique
        self.name = name
        self.value = value
        self.reason = reason


class InputError(PromptflowError, ValueError):
    """The input holds something the recipe cannot use: fix or rename it, nothing was spent."""


class InputTypeError(InputError, TypeError):
    """A technique input has a value of the wrong type, such as a list where text goes.

    Numbers in a text input are not errors: they are read as their text (``7`` is ``"7"``).
    """

    def __init__(self, message: str, *, technique: str, name: str, value: object) -> None:
        super().__init__(message)
        self.technique = technique
        self.name = name
        self.value = value


class ReservedColumnError(InputError):
    """An input column has the name of a column that technique steps write (``error``,
    ``usage``, ``model_name``) but cannot be read as one: rename it."""

    def __init__(self, message: str, *, column: str) -> None:
        super().__init__(message)
        self.column = column


class InputFileError(InputError):
    """An input file cannot be read; ``line`` is the 1-based line at fault, if known."""

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


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


TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
"""HTTP statuses worth trying again: timeouts, conflicts, rate limits, server errors, overload."""


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


class ModelSettingError(PromptflowError, ValueError):
    """A ``Model`` was given a setting it cannot have, such as an unknown ``mode``:
    raised when the model is made, before any call."""


class RunAbortedError(PromptflowError):
    """A run stopped early because its first calls nearly all failed (a wrong key, a wrong
    model name, a server that is down), rather than spend its way through the dataset."""


class BudgetExhaustedError(PromptflowError):
    """The run's ``max_cost_usd`` is spent; no new call is issued (checked before each one)."""

    attempts = 0


class OutputLockedError(PromptflowError):
    """Another run is writing the same output; one run at a time holds an output."""


class EngineError(PromptflowError, ValueError):
    """The chosen engine does not run this recipe or option: the Ray engine refuses a step
    that needs every row at once, before anything runs. ``step`` names it (None for an
    option or a missing extra)."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class OverrideError(PromptflowError, ValueError):
    """A ``--set`` or ``--map`` names no step or attribute of the recipe, or a value of
    the wrong type; nothing has run yet."""


class RecipeFileError(PromptflowError):
    """A recipe file is missing, raises while it runs (an import, a syntax error), or
    defines no ``recipe``; ``line`` is the 1-based line at fault, if known."""

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class StorageError(PromptflowError, OSError):
    """A file could not be written: a full disk, a read-only folder, a size limit.

    What was finished before stays on disk, so the same run started again resumes.
    """


class StorageFullError(StorageError):
    """The reply cache could not store a reply: the disk is full, the file reached its size
    limit, or the disk refused the write. This stops a run rather than fail its rows: every
    further call would be paid for and lost. The replies stored so far stay, so the same
    run started again, once there is room, resumes where it stopped. ``path`` is the cache.
    """

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


def _rebuilt(kind: type[PromptflowError], args: tuple[object, ...], state: dict[str, Any]) -> Any:
    """An error as it was pickled: its arguments and its context, with no ``__init__`` run."""
    error = kind.__new__(kind)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ColumnOverwriteWarning(UserWarning):
    """A step writes a column the input already has (``instruction``, ``generation``):
    the input's values are replaced. Rename one of them to keep both."""
