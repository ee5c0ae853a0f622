"""Model limits shared by every worker: one Ray actor per model, and each worker's proxy.

:class:`ModelLimits` runs the engine's own :class:`~promptflow_dsl._engine._limits.ModelLimiter`
(requests spaced by ``rpm``, a ``tpm`` token bucket, an in-flight window that halves on a
429) inside one actor. A worker's :class:`SharedLimiter` asks it for a turn before every
attempt and tells it afterwards what the attempt used, or that it met a 429 and what
``Retry-After`` said. So N workers never multiply a provider's limit, and a 429 seen by
one worker pauses them all.

>>> import asyncio
>>> async def two_turns() -> list[int]:
...     limits = ModelLimits(rpm=None, tpm=None)
...     first, second = await limits.acquire(100), await limits.acquire(100)
...     await limits.release(first, used=80)
...     return [first, second, limits.in_flight]
>>> asyncio.run(two_turns())
[0, 1, 1]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .._engine._limits import ModelLimiter, Throttle

__all__ = ["LEASE_S", "ModelLimits", "SharedLimiter", "start_model_limits"]

LEASE_S = 900.0
"""A turn not given back within this time (its worker died mid-request) is taken back."""


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

    @contextlib.asynccontextmanager
    async def slot(self, tokens: int) -> AsyncIterator[Throttle]:
        """Hold one of the model's turns, shared with every worker, for one attempt."""
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

    async def _limits(self) -> Any:
        if self._actor is None:
            if self.resolve is None:
                message = "a SharedLimiter needs resolve= to find its model's limits actor"
                raise RuntimeError(message)
            self._actor = await self.resolve()
        return self._actor
