"""RunContext: what one run shares across its steps: options, account, samples, early stop."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from .._errors import PromptflowError, ProviderError, RunAbortedError
from .._model import Model
from .._program import PromptProgram
from ._account import Account
from ._cache import ReplyCache
from ._interpreter import DEFAULT_RETRY, RetryPolicy
from ._progress import ProgressDisplay

__all__ = ["EARLY_STOP_WINDOW", "Rehearsal", "RunContext"]

EARLY_STOP_WINDOW = 10
"""A run stops early when 90% of its latest rows (at least this many, at most twice as many)
failed at the provider."""


@dataclass
class Rehearsal:
    """A dry run's record: every program each step would send, and to which model."""

    calls: dict[str, list[tuple[Model, PromptProgram[Any]]]] = field(default_factory=dict)

    def record(self, step: str, model: Model, program: PromptProgram[Any]) -> None:
        """Note one program that *step* would send to *model*."""
        self.calls.setdefault(step, []).append((model, program))


@dataclass
class RunContext:
    """The run's options, its account, its sample numbering and the checks made between rows."""

    model: Model | None = None
    max_concurrency: int = 16
    on_error: str = "record"
    cache: ReplyCache | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    account: Account = field(default_factory=Account)
    display: ProgressDisplay = field(default_factory=lambda: ProgressDisplay(enabled=False))
    round: int = 0  # the round of the innermost repeat_until (seeds sampling steps)
    rehearsal: Rehearsal | None = None  # a dry run: record the calls, answer them offline
    samples: Counter[str] = field(default_factory=Counter)
    numbered: list[str] = field(default_factory=list)  # prompts numbered since the last take
    _stopped: str | None = None
    _recent: deque[ProviderError | None] = field(
        default_factory=lambda: deque(maxlen=2 * EARLY_STOP_WINDOW)
    )

    @property
    def totals(self) -> dict[str, float]:
        """Calls, cache hits, tokens and dollars so far (every HTTP attempt counted)."""
        return self.account.totals

    @property
    def stopped(self) -> str | None:
        """Why the run stopped issuing calls or rounds, if it did."""
        return self.account.exhausted or self._stopped

    @stopped.setter
    def stopped(self, reason: str | None) -> None:
        self._stopped = reason

    def number_sample(self, prompt_key: str) -> int:
        """The sample index of the next occurrence of this prompt in the run (0, 1, 2...).

        Numbering runs over the whole input, so identical prompts in different chunks are
        distinct samples, and the output does not depend on the chunk size.
        """
        index = self.samples[prompt_key]
        self.samples[prompt_key] = index + 1
        self.numbered.append(prompt_key)
        return index

    def take_numbered(self) -> list[str]:
        """The prompts numbered since the last take, in order (a chunk's, for resuming)."""
        taken, self.numbered = self.numbered, []
        return taken

    def replay_numbered(self, prompt_keys: list[str]) -> None:
        """Count prompts that an earlier run numbered (chunks it finished) as numbered."""
        self.samples.update(prompt_keys)

    def check_early_stop(self, error: PromptflowError | None) -> None:
        """Count a row's outcome; stop the run once nearly all of the latest failed at the
        provider (at the start or mid-run), with a diagnosis read from those errors."""
        self._recent.append(error if isinstance(error, ProviderError) else None)
        failures = [e for e in self._recent if isinstance(e, ProviderError)]
        if len(self._recent) < EARLY_STOP_WINDOW or len(failures) < 0.9 * len(self._recent):
            return
        message = (
            f"stopped early: {len(failures)} of the last {len(self._recent)} rows failed at "
            f"the provider. {diagnose(failures)} The last error: {failures[-1]}"
        )
        raise RunAbortedError(message)


def diagnose(failures: list[ProviderError]) -> str:
    """What the errors say is wrong, in one sentence, from their most common kind."""
    kinds = Counter(_kind(error) for error in failures)
    kind, _ = kinds.most_common(1)[0]
    return _DIAGNOSES[kind]


def _kind(error: ProviderError) -> str:
    if error.status in (401, 403):
        return "unauthorised"
    if error.status == 404:
        return "not found"
    if error.status == 429:
        return "rate limited"
    if error.status is None and not error.transient:
        return "refused"
    if error.status is None:
        return "unreachable"
    return "server error" if error.status >= 500 else "bad request"


_DIAGNOSES = {
    "unauthorised": "The provider refused the API key: check it (and which variable holds it).",
    "not found": "The provider does not know this model or path: check the model name and "
    "api_base.",
    "rate limited": "The provider is rate limiting the run: lower --max-concurrency, set "
    "Model(rpm=..., tpm=...), or try again later.",
    "unreachable": "The provider could not be reached or did not answer in time: check "
    "api_base and that the server is up.",
    "refused": "The request could not be sent: check the model name, the API key and api_base.",
    "server error": "The provider keeps failing with server errors: try again later.",
    "bad request": "The provider rejects the requests: check the model's parameters and mode.",
}
