"""The streaming executor: at most *limit* calls in flight, a new one as soon as one ends.

No lock-step batches: a slow call holds back only its own slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, cast

__all__ = ["run_bounded"]

X = TypeVar("X")
Y = TypeVar("Y")


async def run_bounded(
    items: Sequence[X],
    call: Callable[[X], Awaitable[Y]],
    *,
    limit: int,
    on_result: Callable[[Y], None] | None = None,
) -> list[Y]:
    """Apply *call* to every item with at most *limit* in flight; results keep item order.

    If a call raises, the other calls are cancelled and the error propagates.

    >>> async def double(x: int) -> int:
    ...     await asyncio.sleep(0)
    ...     return 2 * x
    >>> asyncio.run(run_bounded([1, 2, 3], double, limit=2))
    [2, 4, 6]
    """
    if limit < 1:
        message = f"the in-flight limit must be at least 1, not {limit}"
        raise ValueError(message)
    results: list[Y | None] = [None] * len(items)
    pending = iter(enumerate(items))

    async def worker() -> None:
        for index, item in pending:  # one shared iterator: each item is taken once
            results[index] = outcome = await call(item)
            if on_result is not None:
                on_result(outcome)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(limit, len(items)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return cast("list[Y]", results)  # every slot is filled once the workers are done
