"""What the emulated batch APIs share: the plan, the log, and the run of one batch.

A batch's requests are answered one by one, in file order, by the machinery that answers
the online endpoint (the script queue, the responder, the default reply, :class:`Faults`),
so the same request body gets the same reply either way and its usage is billed the same
way. What differs is the clock: a batch ends ``delay_s`` after its creation (the
:class:`BatchPlan`), latency and ``Reply.delay`` do not apply, and a hang or a malformed
body, faults of a connection, become normal replies. The provider modules
(``_openai_batches.py``, ``_anthropic_batches.py``) only say how a batch is submitted,
shown and read back.

>>> plan = BatchPlan(delay_s=0.2, expire_after=0.3, fail=lambda custom_id: None)
>>> plan.answered(10), plan.answered(3)
(3, 0)
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from promptflow_dsl.testing._base import Emulator, Out, RecordedRequest

__all__ = ["BatchHost", "BatchPlan", "BatchRun", "SubmittedBatch", "cut_page"]

_log = logging.getLogger("promptflow_dsl.testing")

Ending = Literal["completed", "expired", "cancelled", "failed"]
"""How a batch ended: every request answered, the time ran out, it was cancelled, or its
input was refused (OpenAI validates a batch's file after creating it)."""


@dataclass(frozen=True)
class BatchPlan:
    """How an emulator runs the batches submitted to it.

    ``delay_s`` is the time from a batch's creation to its end; its requests are answered
    over that time, in order. With ``expire_after`` (a share from 0 to 1) the batch ends
    expired at ``delay_s`` with only that share of its requests answered (rounded down),
    the first ones. ``fail`` maps a request's ``custom_id`` to the HTTP status it fails
    with (its error in the provider's shape), or to None; a failed request is not drawn
    from the script, the responder or the faults, and is not billed.
    """

    delay_s: float = 0.0
    expire_after: float | None = None
    fail: Callable[[str], int | None] | None = None

    def __post_init__(self) -> None:
        if not self.delay_s >= 0:
            message = f"delay_s must be at least 0, got {self.delay_s}"
            raise ValueError(message)
        if self.expire_after is not None and not 0.0 <= self.expire_after <= 1.0:
            message = f"expire_after must be from 0 to 1, got {self.expire_after}"
            raise ValueError(message)

    def answered(self, total: int) -> int:
        """How many of *total* requests get an answer before the batch ends."""
        if self.expire_after is None:
            return total
        return min(total, math.floor(self.expire_after * total + 1e-9))


@dataclass(frozen=True)
class SubmittedBatch:
    """A batch as submitted: its id, its requests' ``custom_id`` in order, its status now
    (the provider's word: ``"completed"``, ``"in_progress"``, ``"ended"``...)."""

    id: str
    custom_ids: tuple[str, ...]
    status: str


@dataclass(eq=False)
class BatchRun:
    """One submitted batch on the server's loop: its requests, the answers so far, its end.

    ``answers`` holds the responses of the first requests, in order (the provider's reply,
    or its error); a request past them when the batch ends was expired or cancelled.
    ``refusal`` is why the whole batch failed, in the provider's shape (OpenAI only).
    """

    id: str
    custom_ids: tuple[str, ...]
    requests: Sequence[RecordedRequest]
    plan: BatchPlan
    refusal: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    cancelled_at: float | None = None
    ended_at: float | None = None
    ending: Ending | None = None
    answers: list[Out] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def succeeded(self) -> int:
        """Requests answered with a 200."""
        return sum(1 for out in self.answers if out.status == 200)

    @property
    def errored(self) -> int:
        """Requests answered with an error."""
        return len(self.answers) - self.succeeded

    @property
    def unanswered(self) -> int:
        """Requests not answered (yet, or ever: expired or cancelled)."""
        return len(self.requests) - len(self.answers)


def cut_page(
    ids: Sequence[str], *, after: str | None = None, before: str | None = None, limit: int = 20
) -> tuple[list[str], bool]:
    """The *limit* ids following *after* (or preceding *before*), and whether more remain.

    >>> cut_page(["c", "b", "a"], limit=2)
    (['c', 'b'], True)
    >>> cut_page(["c", "b", "a"], after="c", limit=2), cut_page(["c", "b", "a"], before="a")
    ((['b', 'a'], False), (['c', 'b'], False))
    """
    if before is not None:
        head = list(ids[: ids.index(before)]) if before in ids else []
        return head[-limit:], len(head) > limit
    if after is None:
        rest = list(ids)
    else:
        rest = list(ids[ids.index(after) + 1 :]) if after in ids else []
    return rest[:limit], len(rest) > limit


def response_json(out: Out) -> Any:
    """A response's body as JSON data (a body that is not JSON stays a string)."""
    if not isinstance(out.body, str):
        return out.body
    try:
        return json.loads(out.body)
    except ValueError:
        return out.body


class BatchHost(Emulator):
    """An emulator with a batch API: the plan, the log, and running a batch.

    A provider's mixin says which paths it serves (:meth:`_add_batch_routes`), what its
    status words are (:meth:`_batch_status`), and what happens when a batch ends
    (:meth:`_batch_ended`); it submits a batch with :meth:`_submit_batch`.
    """

    batch_endpoints: ClassVar[str] = ""
    """The batch API's paths, for :func:`~promptflow_dsl.testing.instructions`."""

    batch_plan: BatchPlan

    def _init_batches(self, plan: BatchPlan | None) -> None:
        self.batch_plan = plan or BatchPlan()
        self._runs: dict[str, BatchRun] = {}
        self._log: list[BatchRun] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._serial = itertools.count(1)
        self._id_salt = secrets.token_hex(8)  # a provider's ids never repeat, across servers too

    # -- what a provider defines -------------------------------------------------------

    def _add_batch_routes(self, app: Any) -> None:
        raise NotImplementedError

    def _batch_status(self, run: BatchRun) -> str:
        raise NotImplementedError

    def _batch_ended(self, run: BatchRun) -> None:
        """Called once a batch has ended, before its status says so."""

    def _refuse_line(self, recorded: RecordedRequest) -> Out | None:
        """An error for a request the online endpoint would refuse before any reply."""
        return None

    # -- public state ------------------------------------------------------------------

    @property
    def batch_log(self) -> list[SubmittedBatch]:
        """The batches submitted so far, in submission order, with their status now."""
        with self._lock:
            runs = list(self._log)
        return [SubmittedBatch(r.id, r.custom_ids, self._batch_status(r)) for r in runs]

    def reset(self) -> None:
        """As :meth:`Emulator.reset`, and the batch log is cleared too (batches in progress
        still run, and stay retrievable)."""
        super().reset()
        with self._lock:
            self._log.clear()

    # -- running a batch (on the server's loop) ----------------------------------------

    def _new_id(self, prefix: str, length: int = 24) -> str:
        """A fresh id, unique as a provider's are: a server started again on the same port
        does not hand out the ids of the batches it had (a client would mistake them)."""
        key = f"{self.provider}/{self._id_salt}/{prefix}/{next(self._serial)}"
        return prefix + hashlib.sha256(key.encode()).hexdigest()[:length]

    def _submit_batch(self, run: BatchRun) -> None:
        """Log and count *run*, and start answering it."""
        with self._lock:
            self._runs[run.id] = run
            self._log.append(run)
            c = self._counts
            self._counts = dataclasses.replace(
                c,
                batches_created=c.batches_created + 1,
                batch_requests=c.batch_requests + len(run.requests),
            )
        task = asyncio.get_running_loop().create_task(self._process(run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cancel_batch(self, run: BatchRun) -> bool:
        """Ask *run* to stop: its unanswered requests become cancelled. False if it ended."""
        if run.ending is not None:
            return False
        if run.cancelled_at is None:
            run.cancelled_at = time.time()
            run.wake.set()
        return True

    async def _process(self, run: BatchRun) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        run.started_at = time.time()
        total = len(run.requests)
        if not run.refusal:
            for index in range(run.plan.answered(total)):
                if run.cancelled_at is not None or self._is_stopping():
                    break
                self._answer_line(run, index)
                await self._pause(run, start + run.plan.delay_s * (index + 1) / total)
            await self._pause(run, start + run.plan.delay_s)
        if self._is_stopping():
            return
        ending: Ending
        if run.refusal:
            ending = "failed"
        elif run.cancelled_at is not None:
            ending = "cancelled"
        else:
            ending = "expired" if run.unanswered else "completed"
        self._batch_ended(run)
        with self._lock:
            run.ended_at, run.ending = time.time(), ending

    def _answer_line(self, run: BatchRun, index: int) -> None:
        custom_id, recorded = run.custom_ids[index], run.requests[index]
        message: str | None = None
        try:
            status = run.plan.fail(custom_id) if run.plan.fail is not None else None
        except Exception as exc:
            _log.exception("%s emulator: the batch plan's fail() failed", self.provider)
            status, message = 500, f"emulator batch plan failed: {exc!r}"
        if status is not None:
            out = self._error(status, message)
        else:
            refused = self._refuse_line(recorded)
            out = refused or self._respond_at_once(recorded, self._next_number())
        with self._lock:
            run.answers.append(out)

    def _next_number(self) -> int:
        with self._lock:
            self._number += 1
            return self._number

    async def _pause(self, run: BatchRun, until: float) -> None:
        """Wait until the loop's clock reads *until*, or *run* is cancelled, or we stop."""
        if run.cancelled_at is not None or self._is_stopping():
            return
        seconds = until - asyncio.get_running_loop().time()
        if seconds > 0:
            try:
                await asyncio.wait_for(run.wake.wait(), timeout=seconds)
            except asyncio.TimeoutError:
                pass

    def _is_stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        for run in list(self._runs.values()):
            run.wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super()._shutdown()
