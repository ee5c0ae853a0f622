"""RunContext: what one run shares across its steps: options, account, samples, early stop."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Iterable, Iterator
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

_LEDGER: contextvars.ContextVar[list[tuple[str, int]] | None] = contextvars.ContextVar(
    "promptflow_numbering_ledger", default=None
)
"""Where the current row's task notes the samples it numbers (its chunk's list)."""

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
    """The run's options, account, sample numbering, call slots and the checks between rows."""

    model: Model | None = None
    max_concurrency: int = 16
    on_error: str = "record"
    cache: ReplyCache | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    account: Account = field(default_factory=Account)
    display: ProgressDisplay = field(default_factory=lambda: ProgressDisplay(enabled=False))
    round: int = 0  # the round of the innermost repeat_until (seeds sampling steps)
    rehearsal: Rehearsal | None = None  # a dry run: record the calls, answer them offline
    _next_sample: Counter[str] = field(default_factory=Counter)
    _taken: defaultdict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)
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
        distinct samples, and the output does not depend on the chunk size. An index that
        an earlier run's finished chunk took (see :meth:`replay_numbered`) is skipped.
        """
        index = self._next_sample[prompt_key]
        while index in self._taken[prompt_key]:
            index += 1
        self._next_sample[prompt_key] = index + 1
        ledger = _LEDGER.get()
        if ledger is not None:
            ledger.append((prompt_key, index))
        return index

    @contextlib.contextmanager
    def numbering_into(self, ledger: list[tuple[str, int]]) -> Iterator[None]:
        """Note in *ledger* every (prompt, sample) that this task numbers (a chunk's rows)."""
        token = _LEDGER.set(ledger)
        try:
            yield
        finally:
            _LEDGER.reset(token)

    def replay_numbered(self, numbered: Iterable[tuple[str, int] | str]) -> None:
        """Mark the samples that an earlier run's finished chunks took, so none is reused.

        An entry without its index (a part written by an older version) takes the next one.
        """
        for entry in numbered:
            key, index = (entry, None) if isinstance(entry, str) else entry
            taken = self._taken[key]
            if index is None:
                index = len(taken)
                while index in taken:
                    index += 1
            taken.add(int(index))

    @contextlib.asynccontextmanager
    async def call_slot(self, step: str, step_limit: int | None) -> AsyncIterator[None]:
        """Hold one of the run's slots for a row's calls (and one of *step*'s, if capped).

        Every step and chunk in flight shares the run's ``max_concurrency``.
        """
        async with contextlib.AsyncExitStack() as stack:
            if step_limit is not None and step_limit < self.max_concurrency:
                await stack.enter_async_context(self._slot(f"step:{step}", step_limit))
            await stack.enter_async_context(self._slot("run", self.max_concurrency))
            yield

    def _slot(self, name: str, size: int) -> asyncio.Semaphore:
        if name not in self._slots:
            self._slots[name] = asyncio.Semaphore(size)
        return self._slots[name]

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
