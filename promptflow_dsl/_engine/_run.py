"""RunContext: what one run shares across its steps: options, totals, budget, early stop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import PromptflowError, ProviderError, RunAbortedError
from .._model import Model
from .._program import PromptProgram
from ._cache import ReplyCache
from ._interpreter import DEFAULT_RETRY, RetryPolicy
from ._progress import ProgressDisplay
from ._types import Usage

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
    """The run's options, its running totals, and the checks made between rows."""

    model: Model | None = None
    max_concurrency: int = 16
    on_error: str = "record"
    cache: ReplyCache | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    max_cost_usd: float | None = None
    display: ProgressDisplay = field(default_factory=lambda: ProgressDisplay(enabled=False))
    totals: dict[str, float] = field(default_factory=dict)
    stopped: str | None = None  # why the run stopped issuing calls, if it did
    round: int = 0  # the round of the innermost repeat_until (seeds sampling steps)
    rehearsal: Rehearsal | None = None  # a dry run: record the calls, answer them offline
    _outcomes: int = 0
    _provider_failures: int = 0

    def record(self, usage: Usage) -> None:
        """Add one completed row's usage to the run's totals."""
        for key, amount in (
            ("calls", usage.attempts),
            ("cache_hits", int(usage.cache_hit)),
            ("input_tokens", 0 if usage.cache_hit else usage.input_tokens or 0),
            ("output_tokens", 0 if usage.cache_hit else usage.output_tokens or 0),
            ("cost_usd", usage.cost_usd or 0.0),
        ):
            self.totals[key] = self.totals.get(key, 0) + amount

    def budget_left(self) -> bool:
        """False once ``max_cost_usd`` is spent; then no new call is issued."""
        if self.max_cost_usd is not None and self.totals.get("cost_usd", 0.0) >= self.max_cost_usd:
            self.stopped = f"max_cost_usd={self.max_cost_usd} reached; no new calls were issued"
            return False
        return True

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
