"""Model limits shared by every worker: one Ray actor per model, and each worker's proxy.

:class:`ModelLimits` runs the engine's own :class:`~promptflow_dsl._engine._limits.ModelLimiter`
(requests spaced by ``rpm``, a ``tpm`` token bucket, an in-flight window that halves on a
429) inside one actor. For a model with ``rpm`` or ``tpm``, a worker's
:class:`SharedLimiter` asks it for a turn before every attempt and tells it afterwards
what the attempt used, or that it met a 429 and what ``Retry-After`` said: N workers never
multiply a provider's limit. A model without them needs no turn: each worker keeps its own
in-flight window, and only the 429s are shared: a worker that meets one tells the actor,
and every worker, watching the actor a few times a second, pauses for the ``Retry-After``
and halves its window too. Either way a 429 seen by one worker slows them all.

>>> import asyncio
>>> async def two_turns() -> list[int]:
...     limits = ModelLimits(rpm=None, tpm=None)
...     first, second = await limits.acquire(100), await limits.acquire(100)
...     await limits.release(first, used=80)
...     await limits.pause(1.5)  # a 429 with Retry-After: 1.5, met by some worker
...     count, _ = await limits.pauses()
...     return [first, second, limits.in_flight, count]
>>> asyncio.run(two_turns())
[0, 1, 1, 1]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .._engine._limits import ModelLimiter, Throttle

__all__ = ["LEASE_S", "WATCH_S", "ModelLimits", "SharedLimiter", "start_model_limits"]

LEASE_S = 900.0
"""A turn not given back within this time (its worker died mid-request) is taken back."""

WATCH_S = 0.1
"""How often a worker looks for a 429 that another worker met (models without limits)."""


@dataclass
class _Turn:
    stack: contextlib.AsyncExitStack
    throttle: Throttle
    timer: asyncio.TimerHandle


class ModelLimits:
    """The limits of one model, for every worker of a run (an async Ray actor)."""

    def __init__(self, rpm: float | None, tpm: float | None, lease_s: float = LEASE_S) -> None:
        self._limiter = ModelLimiter(rpm=rpm, tpm=tpm)
        self._turns: dict[int, _Turn] = {}
        self._tickets = itertools.count()
        self._lease_s = lease_s
        self._pauses = 0
        self._paused_until = 0.0

    @property
    def in_flight(self) -> int:
        """Turns given out and not yet given back."""
        return len(self._turns)

    async def acquire(self, tokens: int) -> int:
        """Wait for a turn to send one attempt of about *tokens* tokens; return its ticket."""
        stack = contextlib.AsyncExitStack()
        throttle = await stack.enter_async_context(self._limiter.slot(tokens))
        ticket = next(self._tickets)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._lease_s, lambda: loop.create_task(self.release(ticket)))
        self._turns[ticket] = _Turn(stack, throttle, timer)
        return ticket

    async def pause(self, seconds: float) -> None:
        """A worker met a 429 that asks for *seconds*: every worker pauses (and this
        actor's own turns wait too)."""
        self._pauses += 1
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        self._limiter.back_off(seconds)

    async def pauses(self) -> tuple[int, float]:
        """How many 429s were reported so far, and the seconds the pause still lasts."""
        return self._pauses, max(0.0, self._paused_until - time.monotonic())

    async def release(
        self,
        ticket: int,
        used: int | None = None,
        throttled: bool = False,  # noqa: FBT001, FBT002 - sent positionally by the proxy
        retry_after: float | None = None,
    ) -> None:
        """Give a turn back with what its attempt used, or its 429 and ``Retry-After``."""
        turn = self._turns.pop(ticket, None)
        if turn is None:  # given back already (its lease ran out)
            return
        turn.timer.cancel()
        turn.throttle.used = used
        turn.throttle.throttled = throttled
        turn.throttle.retry_after = retry_after
        await turn.stack.aclose()


def start_model_limits(rpm: float | None, tpm: float | None) -> Any:
    """A :class:`ModelLimits` actor (it takes no CPU: it only keeps time)."""
    import ray

    return ray.remote(ModelLimits).options(num_cpus=0, max_concurrency=10_000).remote(rpm, tpm)


@dataclass
class SharedLimiter(ModelLimiter):
    """A worker's limiter for one model: every turn comes from the model's limits actor.

    ``resolve`` finds that actor (asked once); ``before_send`` runs once the turn is
    given, right before the attempt is sent (the worker refreshes the run's spending then,
    so the budget is checked against every worker's calls).
    """

    resolve: Callable[[], Awaitable[Any]] | None = None
    before_send: Callable[[], Awaitable[None]] | None = None
    _actor: Any = field(default=None, repr=False)
    _watching: asyncio.Task[None] | None = field(default=None, repr=False)
    _told: int = 0  # 429s this worker reported (it has backed off for those already)
    _watched: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @contextlib.asynccontextmanager
    async def slot(self, tokens: int) -> AsyncIterator[Throttle]:
        """Hold a turn for one attempt: the model's shared turn when it has limits, else
        this worker's own slot (with the pauses every worker shares)."""
        if self.rpm is None and self.tpm is None:
            async with self._own_slot(tokens) as throttle:
                yield throttle
            return
        actor = await self._limits()
        granted = actor.acquire.remote(tokens)
        try:
            ticket = await granted
        except asyncio.CancelledError:
            actor.release.remote(granted)  # Ray passes the ticket along once it is granted
            raise
        throttle = Throttle()
        try:
            if self.before_send is not None:
                await self.before_send()
            yield throttle
        finally:
            actor.release.remote(ticket, throttle.used, throttle.throttled, throttle.retry_after)

    @contextlib.asynccontextmanager
    async def _own_slot(self, tokens: int) -> AsyncIterator[Throttle]:
        if self._watching is None:
            self._watching = asyncio.get_running_loop().create_task(self._watch())
        await self._watched.wait()  # a pause that began before this worker did counts too
        async with super().slot(tokens) as throttle:
            if self.before_send is not None:
                await self.before_send()
            yield throttle
        if throttle.throttled:  # backed off here already; now every other worker
            self._told += 1
            actor = await self._limits()
            actor.pause.remote(throttle.retry_after if throttle.retry_after is not None else 1.0)

    async def _watch(self) -> None:
        """Back off whenever another worker reports a 429 (checked every ``WATCH_S``)."""
        seen = 0
        try:
            actor = await self._limits()
            while True:
                count, remaining = await actor.pauses.remote()
                if count - seen > self._told:  # a 429 that another worker met
                    self.back_off(remaining)
                self._told = max(0, self._told - (count - seen))
                seen = count
                self._watched.set()
                await asyncio.sleep(WATCH_S)
        except Exception:  # the run is over, its actors gone  # noqa: BLE001
            self._watched.set()

    async def _limits(self) -> Any:
        if self._actor is None:
            if self.resolve is None:
                message = "a SharedLimiter needs resolve= to find its model's limits actor"
                raise RuntimeError(message)
            self._actor = await self.resolve()
        return self._actor
