"""Batcher: gathers a run's requests into provider batches, watches them, hands back answers.

Each request waits in a lane (one provider, address, model and endpoint: a batch holds one
model) until the lane has been quiet for ``window_s``, its oldest request waited
``max_wait_s``, or it reached the provider's size limit; then the lane is submitted as one
batch and noted in the ledger. A watcher polls each batch until it ends, collects its
answers and wakes the requests waiting for them. A request that a ledger shows in an
earlier run's batch waits for that batch rather than being sent again.

Rows flow on as their answers arrive, so the next step's (or the next round's) requests
gather into the next batch while other batches still run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..._errors import TRANSIENT_STATUS
from ..._secrets import scrub
from ._clients import Answer, BatchClient, BatchState, Lost, batch_client, error_answer
from ._ledger import BatchLedger, SubmittedBatch

__all__ = ["BatchOptions", "Batcher", "Lane"]

_log = logging.getLogger("promptflow_dsl")

Outcome = Answer | Lost

NOT_SENT_AGAIN = 424
"""The status of a request that must not be sent again (so not a transient one): its batch
cannot be collected and may still run (sending it again could pay twice), or the user
cancelled it during the run."""
Progress = Callable[[str, "str | None"], None]


@dataclass(frozen=True)
class BatchOptions:
    """How requests are gathered into batches, and how often a batch is looked at.

    >>> BatchOptions(window_s=0.1, poll_s=0.2).max_poll_s
    60.0
    """

    window_s: float = 2.0  # a lane is submitted once no request joined it for this long
    max_wait_s: float = 60.0  # ... or once its oldest request waited this long
    poll_s: float = 2.0  # the first look at a running batch; later looks back off x1.5
    max_poll_s: float = 60.0


@dataclass(frozen=True)
class Lane:
    """Requests that may share a batch: one provider, address, key, model and endpoint."""

    provider: str
    api_base: str | None
    model: str
    endpoint: str
    api_key: str = field(default="", repr=False, compare=True)


@dataclass
class _Waiting:
    custom_id: str
    body: Any
    answer: asyncio.Future[Outcome]


@dataclass
class _Gathering:
    requests: dict[str, _Waiting] = field(default_factory=dict)
    size: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    timer: asyncio.Task[None] | None = None


class Batcher:
    """One run's batches: gathered per lane, noted in a *ledger*, watched until they end.

    *progress(batch_id, summary)* hears each batch's counts and age (None once collected).
    """

    def __init__(
        self,
        ledger: BatchLedger | None,
        options: BatchOptions | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.ledger = ledger
        self.options = options or BatchOptions()
        self.progress = progress
        self.submitted: list[SubmittedBatch] = []  # this run's submissions, in order
        self.started_at = time.time()
        self._lanes: dict[Lane, _Gathering] = {}
        self._clients: dict[tuple[str, str | None, str], BatchClient] = {}
        self._waiters: dict[str, dict[str, list[asyncio.Future[Outcome]]]] = {}
        self._collected: dict[str, dict[str, Outcome]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._submitting: set[asyncio.Task[None]] = set()
        self._consumed: set[tuple[str, str]] = set()  # (custom_id, batch_id) answered already

    async def answer(self, lane: Lane, custom_id: str, body: Any) -> Outcome:
        """The provider's answer to one request, from an earlier batch or a new one."""
        earlier = self.ledger.latest_batch(custom_id) if self.ledger else None
        if earlier is not None and (custom_id, earlier.id) not in self._consumed:
            self._consumed.add((custom_id, earlier.id))
            return await self._await_in(earlier, lane, custom_id)
        return await self._gather(lane, custom_id, body)

    @property
    def running(self) -> list[SubmittedBatch]:
        """Batches of this run, or found in the ledger, that have not been collected."""
        return [b for b in self.submitted if b.id not in self._collected]

    async def aclose(self) -> None:
        """Stop gathering and watching; batches already submitted keep running."""
        timers = [g.timer for g in self._lanes.values() if g.timer]
        tasks = [*timers, *self._submitting, *self._watchers.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for gathering in self._lanes.values():
            for waiting in gathering.requests.values():
                waiting.answer.cancel()
        self._lanes.clear()
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()
        if self.ledger is not None:
            self.ledger.close()

    # -- gathering ---------------------------------------------------------------------

    async def _gather(self, lane: Lane, custom_id: str, body: Any) -> Outcome:
        gathering = self._lanes.setdefault(lane, _Gathering())
        if custom_id in gathering.requests:  # the same request twice: one answer
            return await asyncio.shield(gathering.requests[custom_id].answer)
        now = time.monotonic()
        client = self._client(lane)
        size = client.size_of(custom_id, lane.endpoint, body)
        max_requests, max_bytes = client.limits
        if gathering.requests and (
            len(gathering.requests) >= max_requests or gathering.size + size > max_bytes
        ):
            self._submit_now(lane)
            gathering = self._lanes.setdefault(lane, _Gathering())
        answer: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        gathering.requests[custom_id] = _Waiting(custom_id, body, answer)
        gathering.size += size
        gathering.first_at = gathering.first_at or now
        gathering.last_at = now
        if gathering.timer is None:
            gathering.timer = asyncio.create_task(self._submit_when_quiet(lane, gathering))
        return await answer

    async def _submit_when_quiet(self, lane: Lane, gathering: _Gathering) -> None:
        options = self.options
        while True:
            due = min(gathering.last_at + options.window_s, gathering.first_at + options.max_wait_s)
            wait = due - time.monotonic()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        if self._lanes.get(lane) is gathering:
            gathering.timer = None  # this task ends in _submit: nothing to cancel
            self._submit_now(lane)

    def _submit_now(self, lane: Lane) -> None:
        gathering = self._lanes.pop(lane)
        if gathering.timer is not None:
            gathering.timer.cancel()
        wanted = [w for w in gathering.requests.values() if not w.answer.cancelled()]
        if not wanted:  # every caller gave up (their rows were cancelled): send nothing
            return
        task = asyncio.create_task(self._submit(lane, wanted))
        self._submitting.add(task)
        task.add_done_callback(self._submitting.discard)

    async def _submit(self, lane: Lane, requests: list[_Waiting]) -> None:
        client = self._client(lane)
        try:
            batch_id = await client.submit(
                lane.model, lane.endpoint, [(w.custom_id, w.body) for w in requests]
            )
        except Exception as exc:
            outcome = _refusal(lane.provider, exc)
            for waiting in requests:
                if not waiting.answer.done():
                    waiting.answer.set_result(outcome)
            return
        batch = SubmittedBatch(
            batch_id, lane.provider, lane.model, lane.api_base, time.time(), len(requests)
        )
        self.submitted.append(batch)
        if self.ledger is not None:
            self.ledger.submitted(batch, [w.custom_id for w in requests])
        waiters = self._waiters.setdefault(batch_id, {})
        for waiting in requests:
            self._consumed.add((waiting.custom_id, batch_id))
            waiters.setdefault(waiting.custom_id, []).append(waiting.answer)
        self._watch(batch, client)

    # -- watching ----------------------------------------------------------------------

    async def _await_in(self, batch: SubmittedBatch, lane: Lane, custom_id: str) -> Outcome:
        if batch.id in self._collected:
            missing = Lost(f"is missing from the results of batch {batch.id}")
            return self._collected[batch.id].get(custom_id, missing)
        answer: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(batch.id, {}).setdefault(custom_id, []).append(answer)
        if batch.id not in self._watchers:
            self.submitted.append(batch)
            self._watch(batch, self._client(lane))
        return await answer

    def _watch(self, batch: SubmittedBatch, client: BatchClient) -> None:
        if batch.id not in self._watchers:
            self._watchers[batch.id] = asyncio.create_task(self._watch_until_ended(batch, client))

    async def _watch_until_ended(self, batch: SubmittedBatch, client: BatchClient) -> None:
        """Look at the batch until it ended, then collect it. Looking costs nothing, so an
        outage is waited out for as long as the run lives; a refusal that will not pass (a
        key, a permission) fails the waiting rows, and a batch the provider does not know
        is forgotten."""
        delay = self.options.poll_s
        while True:
            try:
                state = await client.state(batch.id)
                if state.ended:
                    outcomes = await client.results(batch.id, list(self._waiters.get(batch.id, {})))
                    break
                self._tell(batch, state)
            except Exception as exc:
                status = getattr(exc, "status_code", None)
                if status == 404:  # deleted, or another account's
                    self._forget(batch)
                    return
                if status is not None and status not in TRANSIENT_STATUS:
                    self._give_up(batch, exc)
                    return
                why = scrub(str(exc))
                _log.warning("could not look at batch %s (%s); trying again", batch.id, why)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.options.max_poll_s)
        if self.ledger is not None:
            self.ledger.ended(batch.id, state.status)
            answered = [cid for cid, o in outcomes.items() if isinstance(o, Answer)]
            counted = self.ledger.collected(batch.id, answered)
            outcomes = {
                cid: dataclasses.replace(o, counted=True)
                if cid in counted and isinstance(o, Answer)
                else o
                for cid, o in outcomes.items()
            }
            asked = self.ledger.stop_asked_at(batch.id)
            if asked is not None and asked >= self.started_at:  # cancelled during this run
                outcomes = {cid: self._cancelled(batch, o) for cid, o in outcomes.items()}
        self._collected[batch.id] = outcomes
        if self.progress is not None:
            self.progress(batch.id, None)
        for custom_id, answers in self._waiters.pop(batch.id, {}).items():
            for answer in answers:
                if not answer.done():
                    missing = Lost(f"is missing from the results of batch {batch.id}")
                    answer.set_result(outcomes.get(custom_id, missing))

    @staticmethod
    def _cancelled(batch: SubmittedBatch, outcome: Outcome) -> Outcome:
        """A request that the user's cancel stopped fails its row rather than run again."""
        if isinstance(outcome, Answer):
            return outcome
        message = (
            f"the request was cancelled before it ran: batch {batch.id} was cancelled with "
            "`promptflow batches --cancel` (run again to send it anew)"
        )
        return error_answer(batch.provider, NOT_SENT_AGAIN, message)

    def _forget(self, batch: SubmittedBatch) -> None:
        """The provider does not know the batch: its requests are lost, to be sent again."""
        _log.warning(
            "%s does not know batch %s: its requests go in a new batch", batch.provider, batch.id
        )
        if self.ledger is not None:
            self.ledger.ended(batch.id, "unknown")
        self._collected[batch.id] = {}
        if self.progress is not None:
            self.progress(batch.id, None)
        for answers in self._waiters.pop(batch.id, {}).values():
            for answer in answers:
                if not answer.done():
                    answer.set_result(Lost(f"was in batch {batch.id}, unknown to the provider"))

    def _give_up(self, batch: SubmittedBatch, exc: BaseException) -> None:
        """The batch cannot be looked at: its rows fail (not to be sent again: it may still
        run, and is paid for); a later run waits for it again."""
        message = (
            f"could not collect batch {batch.id} from {batch.provider}: {scrub(str(exc))}; it "
            "may still be running: run again later to collect it"
        )
        failed = error_answer(batch.provider, NOT_SENT_AGAIN, message)
        for answers in self._waiters.pop(batch.id, {}).values():
            for answer in answers:
                if not answer.done():
                    answer.set_result(failed)

    def _tell(self, batch: SubmittedBatch, state: BatchState) -> None:
        if self.progress is None:
            return
        age = time.time() - batch.submitted_at
        summary = (
            f"{state.succeeded}/{state.total} done, {state.failed} failed, "
            f"{state.status}, {describe_age(age)} old"
        )
        self.progress(batch.id, summary)

    def _client(self, lane: Lane) -> BatchClient:
        where = (lane.provider, lane.api_base, lane.api_key)
        if where not in self._clients:
            self._clients[where] = batch_client(lane.provider, lane.api_base, lane.api_key)
        return self._clients[where]


def _refusal(provider: str, exc: BaseException) -> Outcome:
    """What a failed submission means for its requests: the provider's refusal as their
    reply (a 400 fails the rows, a 429 or 5xx is tried again), or, with no reply at all
    (the connection), lost, to be sent again."""
    status, body = getattr(exc, "status_code", None), getattr(exc, "body", None)
    if status is None:
        return Lost(f"could not be submitted: {scrub(str(exc))}")
    if isinstance(body, dict) and body:
        shaped = body if "error" in body else {"error": body}
        return Answer(int(status), shaped)
    return error_answer(provider, int(status), f"the batch was refused: {scrub(str(exc))}")


def describe_age(seconds: float) -> str:
    """A batch's age, the way a person says it.

    >>> describe_age(42), describe_age(250), describe_age(7300)
    ('42 s', '4 min', '2 h 1 min')
    """
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def tell_running_batches(batches: list[SubmittedBatch], again: str | None) -> None:
    """Tell a user whose run stopped while batches still ran how to collect them: *again*
    (what to do), or None when no ledger noted them, so no later run can find them."""
    if not batches:
        return
    names = ", ".join(f"{b.id} ({b.provider}, {b.requests} requests)" for b in batches[:5])
    more = f" and {len(batches) - 5} more" if len(batches) > 5 else ""
    how = (
        f"to collect them, {again}: nothing is submitted twice"
        if again
        else "no ledger noted them (the run had no cache), so a later run submits their "
        "requests anew: cancel them at the provider if they are not wanted"
    )
    _log.warning(
        "%d batch%s still running at the provider: %s%s. They keep running and are "
        "paid for; %s.",
        len(batches),
        "" if len(batches) == 1 else "es",
        names,
        more,
        how,
    )
