"""RankedSlots: at most *size* holders at once; when a slot frees, the lowest rank goes next.

A run gives its earlier steps the lower ranks, so a row's first call goes ahead of other
rows' later calls. Every call still waits for a slot, so the window stays full; what
changes is the end of a run: the rows admitted last get their first calls through at
once, and what remains is one round of later calls, not two in a row. Within a rank,
waiters go first come, first served. Cancelling a waiter at any point leaves no slot taken.

>>> import asyncio
>>> async def order() -> list[str]:
...     slots, went = RankedSlots(1), []
...     async def call(name: str, rank: int) -> None:
...         async with slots.hold(rank):
...             went.append(name)
...             await asyncio.sleep(0)
...     await asyncio.gather(call("first", 1), call("later", 1), call("urgent", 0))
...     return went
>>> asyncio.run(order())
['first', 'urgent', 'later']
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

__all__ = ["RankedSlots"]


class RankedSlots:
    """A semaphore whose waiters are served by rank, then by arrival."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def hold(self, rank: int) -> AsyncIterator[None]:
        """Hold one slot for the block, waiting behind lower ranks for it."""
        await self._acquire(rank)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (rank, next(self._arrivals), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # the slot came as the wait was cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, granted = heapq.heappop(self._waiters)
            if not granted.done():  # a cancelled waiter stays in the heap until here
                granted.set_result(None)
                return
        self._free += 1
