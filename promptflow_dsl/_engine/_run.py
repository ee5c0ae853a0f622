"""RunContext: what one run shares across its steps: options, account, samples, early stop."""

from __future__ import annotations

from collections import Counter
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
"""A run stops early when 90% of its first this-many calls fail at the provider."""


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
    _outcomes: int = 0
    _provider_failures: int = 0

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
        """Count a call's outcome; stop the run if its first calls nearly all failed."""
        if self._outcomes >= 2 * EARLY_STOP_WINDOW:
            return
        self._outcomes += 1
        self._provider_failures += isinstance(error, ProviderError)
        if self._outcomes >= EARLY_STOP_WINDOW and self._provider_failures >= 0.9 * self._outcomes:
            message = (
                f"stopped early: {self._provider_failures} of the first {self._outcomes} calls "
                f"failed at the provider, the last with: {error}. "
                "Check the model name, the API key and api_base."
            )
            raise RunAbortedError(message)
