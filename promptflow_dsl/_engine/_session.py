"""Session: one run's engine. Every call of every step goes through it.

A session owns what concerns calls: the default model, sample numbering over the whole
input, the reply cache, retries, the budget (its :class:`Account`), the run's call slots,
early stop, progress, and rehearsal (a dry run records each call, then answers it
offline). A step hands it each row's sequence of prompt programs and gets back one outcome
per row:

>>> import asyncio
>>> from promptflow_dsl import self_instruct
>>> session = Session(model=Model("mock"))
>>> rows = [self_instruct.sequence("Rivers carve valleys.", num_instructions=2)]
>>> (outcome,) = asyncio.run(session.map("self_instruct", rows))
>>> len(outcome.result.instructions), session.totals["calls"]
(2, 1)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from .._errors import (
    InvalidReplyError,
    ModelSettingError,
    PromptflowError,
    ProviderError,
    RunAbortedError,
    StorageError,
)
from .._model import OFFLINE_MODEL, Model
from .._program import PromptProgram
from ._account import Account
from ._batch import (
    BatchClients,
    Batcher,
    BatchLedger,
    BatchOptions,
    SubmittedBatch,
    check_batchable,
)
from ._cache import ReplyCache, cache_key
from ._driver import Sequence as Calls
from ._driver import Started, add_usage, drive, start
from ._executor import run_bounded
from ._interpreter import DEFAULT_RETRY, RetryPolicy, interpret
from ._progress import ProgressDisplay
from ._types import Completion, Usage

__all__ = [
    "EARLY_STOP_WINDOW",
    "Outcome",
    "Rehearsal",
    "RowError",
    "RowFailure",
    "Session",
]

_log = logging.getLogger("promptflow_dsl")

_LEDGER: contextvars.ContextVar[list[tuple[str, int]] | None] = contextvars.ContextVar(
    "promptflow_numbering_ledger", default=None
)
"""Where the current row's task notes the samples it numbers (its chunk's list)."""

EARLY_STOP_WINDOW = 10
"""A run stops early when 90% of its latest rows (at least this many, at most twice as many)
failed at the provider."""

RUN_STOPPERS = (RunAbortedError, StorageError, ModelSettingError)
"""Errors that end a run, not a row."""

BATCH_ROWS_IN_FLIGHT = 50_000
"""Rows a stream lets in at once in batch mode: one OpenAI batch's worth."""

_OFFLINE = Model(OFFLINE_MODEL)
_REPEAT_STRIDE = 1_000_003  # sample indices of repeats within a row never meet other rows'
_PROMPT_KEY_CHARS = 20  # 80 bits of the prompt's hash tell prompts apart for numbering


@dataclass(frozen=True)
class RowError:
    """Why a row failed: the ``error`` column's struct."""

    step: str
    type: str
    message: str
    attempts: int = 0
    raw_reply: str | None = None


@dataclass(frozen=True)
class RowFailure:
    """A row that failed, and what its calls used before it did."""

    error: RowError
    usage: Usage | None = None

    @classmethod
    def of(cls, step: str, exc: PromptflowError, spent: list[Usage]) -> RowFailure:
        """The failure of a row of *step* that raised *exc* after using *spent*."""
        raw = exc.raw_text if isinstance(exc, InvalidReplyError) else None
        error = RowError(step, type(exc).__name__, str(exc), exc.attempts, raw)
        return cls(error, add_usage(spent + ([exc.usage] if exc.usage else [])))


Outcome: TypeAlias = "Completion[Any] | RowFailure | None"
"""A row's outcome: its result, why it failed, or None (an earlier step failed it)."""


@dataclass
class Rehearsal:
    """A dry run's record: every program each step would send, and to which model."""

    calls: dict[str, list[tuple[Model, PromptProgram[Any]]]] = field(default_factory=dict)

    def record(self, step: str, model: Model, program: PromptProgram[Any]) -> None:
        """Note one program that *step* would send to *model*."""
        self.calls.setdefault(step, []).append((model, program))


@dataclass
class Session:
    """One run's engine: numbering, cache, limits, retries, budget, early stop, progress."""

    model: Model | None = None
    max_concurrency: int = 16
    on_error: Literal["record", "raise"] = "record"
    cache: ReplyCache | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    account: Account = field(default_factory=Account)
    display: ProgressDisplay = field(default_factory=lambda: ProgressDisplay(enabled=False))
    rehearsal: Rehearsal | None = None  # a dry run: record the calls, answer them offline
    batch: bool = False  # every model's calls go through its provider's batch API
    batch_options: BatchOptions = field(default_factory=BatchOptions)
    batch_ledger: Path | None = None  # where batches are noted (None: beside the cache)
    stopped_because: str | None = None  # why the run stopped issuing rounds (set by loops)
    _next_sample: Counter[str] = field(default_factory=Counter)
    _taken: defaultdict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _recent: deque[ProviderError | None] = field(
        default_factory=lambda: deque(maxlen=2 * EARLY_STOP_WINDOW)
    )
    _batches: BatchClients | None = None

    @property
    def totals(self) -> dict[str, float]:
        """Calls, cache hits, tokens and dollars so far (every HTTP attempt counted)."""
        return self.account.totals

    @property
    def stopped(self) -> str | None:
        """Why the run stopped issuing calls or rounds, if it did."""
        return self.account.exhausted or self.stopped_because

    async def map(
        self,
        step: str,
        sequences: Sequence[Calls | RowFailure | None],
        *,
        model: Model | None = None,
        limit: int | None = None,
    ) -> list[Outcome]:
        """Run each row's sequence of programs; one outcome per row, in row order.

        A sequence that cannot build its first program fails its row with no call; a row
        given as a failure or None passes through. *model* defaults to the session's;
        *limit* caps this step's rows in flight below the run's.
        """
        chosen = model or self.model
        if chosen is None:
            message = f"step {step!r} has no model: pass model= to run() or to .step()"
            raise ModelSettingError(message)
        rows = [self._start(step, sequence) for sequence in sequences]
        samples = self._number(rows, chosen)
        bar = self.display.step(step)
        bar.add_total(len(rows))

        async def one(index: int) -> Outcome:
            row = rows[index]
            if not isinstance(row, Started):
                return row
            sample, first_key = samples[index]
            return await self._row(step, row, chosen, sample, first_key, limit)

        def tick(outcome: Outcome) -> None:
            usage = outcome.usage if isinstance(outcome, Completion) else None
            bar.advance(failed=isinstance(outcome, RowFailure), usage=usage)

        in_flight = min(self.max_concurrency, limit or self.max_concurrency)
        if self.batches(chosen):  # rows wait for batches, not for slots: let them all in
            in_flight = max(1, len(rows))
        return await run_bounded(range(len(rows)), one, limit=in_flight, on_result=tick)

    async def _row(  # noqa: PLR0913 - one row's whole context
        self,
        step: str,
        row: Started,
        model: Model,
        sample: int,
        first_key: str | None,
        limit: int | None,
    ) -> Completion[Any] | RowFailure:
        """One row's calls under one of the run's slots; a row error becomes its failure."""
        completions: list[Completion[Any]] = []
        repeats: Counter[str] = Counter()

        async def call(program: PromptProgram[Any]) -> Completion[Any]:
            # A prompt repeated within one row is a new sample, not a cache hit.
            repeat = repeats[program.text()]
            repeats[program.text()] += 1
            key = first_key if program is row.first and repeat == 0 else None
            sample_index = sample + _REPEAT_STRIDE * repeat
            completions.append(await self.call(step, program, model, sample_index, key=key))
            return completions[-1]

        try:
            batched = self.batches(model) is not None  # a batch's rows need no slot
            slot = contextlib.nullcontext() if batched else self.call_slot(step, limit)
            async with slot:
                result = await drive(row, call)
        except PromptflowError as exc:
            if self.on_error == "raise" or isinstance(exc, RUN_STOPPERS):
                raise
            self.check_early_stop(exc)
            return RowFailure.of(step, exc, [c.usage for c in completions])
        self.check_early_stop(None)
        last, usage = completions[-1], add_usage([c.usage for c in completions])
        return Completion(result, last.raw_text, last.model_name, usage)

    def call(  # noqa: PLR0913 - the call, and its key when the caller has it
        self,
        step: str,
        program: PromptProgram[Any],
        model: Model,
        sample: int = 0,
        *,
        key: str | None = None,
    ) -> Awaitable[Completion[Any]]:
        """One program to *model*: from the cache, the provider, or (rehearsing) offline.

        *key* is the call's cache key, if the caller computed it already.
        """
        if self.rehearsal is not None:
            self.rehearsal.record(step, model, program)
            return interpret(program, _OFFLINE)
        return interpret(
            program,
            model,
            cache=self.cache,
            sample=sample,
            key=key,
            retry=self.retry,
            account=self.account,
            on_wait=self.display.waiting,
            batch=self.batches(model),
        )

    def rows_in_flight(self, *, batched_step: bool = False) -> int:
        """How many rows a stream lets in at once: twice the call slots, or in batch mode as
        many as a batch holds (rows wait for batches, not for slots)."""
        default_batched = self.model is not None and self.model.batch
        if self.batch or default_batched or batched_step:
            return BATCH_ROWS_IN_FLIGHT
        return 2 * self.max_concurrency

    def batching(self, model: Model) -> bool:
        """True if *model*'s calls go through its provider's batch API in this run."""
        return (self.batch or model.batch) and not model.is_offline and self.rehearsal is None

    def check_models(self, models: Iterable[Model | None]) -> None:
        """Refuse, before any call, a step's model that batch mode cannot send."""
        for model in models:
            chosen = model or self.model
            if chosen is not None and self.batching(chosen):
                check_batchable(chosen)

    def batches(self, model: Model) -> BatchClients | None:
        """The batch clients for *model*'s calls in batch mode (None: it runs online)."""
        if not self.batching(model):
            return None
        if self._batches is None:
            where = self.batch_ledger
            if where is None and self.cache is not None:
                where = self.cache.path.with_suffix(".batches.sqlite")  # beside the cache
            if where is None:
                _log.warning(
                    "batch mode without a cache: a run that is stopped cannot find its "
                    "batches again (they would be submitted anew)"
                )
            ledger = BatchLedger(where) if where is not None else None
            batcher = Batcher(ledger, self.batch_options, self.display.batch)
            self._batches = BatchClients(batcher)
        return self._batches

    @property
    def running_batches(self) -> list[SubmittedBatch]:
        """Batches this run submitted (or found) that have not been collected."""
        return self._batches.batcher.running if self._batches else []

    async def aclose(self) -> list[SubmittedBatch]:
        """Stop watching batches (they keep running at the provider); returns those that
        were not collected, so the caller can say how to collect them."""
        if self._batches is None:
            return []
        running = self.running_batches
        await self._batches.aclose()
        self._batches = None
        return running

    def _start(self, step: str, row: Calls | RowFailure | None) -> Started | RowFailure | None:
        """The row's sequence advanced to its first program, or the row's failure to build
        it (raised with ``on_error="raise"``)."""
        if row is None or isinstance(row, RowFailure):
            return row
        try:
            return start(row)
        except PromptflowError as exc:  # the inputs make no prompt: no call was made
            if self.on_error == "raise":
                raise
            return RowFailure(RowError(step, type(exc).__name__, str(exc)))

    def _number(
        self, rows: Sequence[Started | RowFailure | None], model: Model
    ) -> list[tuple[int, str | None]]:
        """Each row's sample, and the cache key of its first call when that is sample 0.

        Rows with identical first prompts get samples 0, 1, 2...: distinct cache entries
        (and distinct fabrications from the offline model).
        """
        numbered: list[tuple[int, str | None]] = []
        for row in rows:
            if not isinstance(row, Started):
                numbered.append((0, None))
                continue
            key = cache_key(row.first, model)
            sample = self.number_sample(key[:_PROMPT_KEY_CHARS])
            numbered.append((sample, key if sample == 0 else None))
        return numbered

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
