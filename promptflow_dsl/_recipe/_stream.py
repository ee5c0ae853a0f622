"""Streaming: each row moves on to its next step as soon as its previous step is done.

Row-wise steps are applied to one input row at a time, many rows at once, so a slow call
holds back its own row only: the rows behind it go on to their next steps, and the next
chunk starts while the last rows of this one finish. Calls in flight stay under the run's
limit (``Session.call_slot``); rows in flight under twice that (in batch mode, under a
batch's size: rows wait for batches, not for slots). Outputs come back
chunk by chunk, in input order.

>>> import asyncio, polars as pl
>>> from promptflow_dsl import explode
>>> frame = pl.DataFrame({"xs": [[1, 2], [3]]})
>>> asyncio.run(stream_frame((explode("xs"),), frame, Session()))["xs"].to_list()
[1, 2, 3]
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from .._engine._session import Session
from ._step import Step

if TYPE_CHECKING:
    import polars as pl

__all__ = ["stream_chunks", "stream_frame"]

K = TypeVar("K")


@dataclass
class _Chunk(Generic[K]):
    """One input chunk on its way through: its rows' outputs as they finish."""

    key: K
    frame: pl.DataFrame
    rows: list[pl.DataFrame | None]
    left: int
    numbered: list[tuple[str, int]] = field(default_factory=list)
    admitted: bool = False


async def apply_steps(steps: Sequence[Step], frame: pl.DataFrame, session: Session) -> pl.DataFrame:
    """Apply *steps* in order to the whole of *frame*."""
    for step in steps:
        frame = await step.apply(frame, session)
    return frame


async def stream_chunks(
    steps: Sequence[Step],
    chunks: Iterable[tuple[K, pl.DataFrame]],
    session: Session,
    deliver: Callable[[K, pl.DataFrame, list[tuple[str, int]]], None],
) -> None:
    """Stream every row of every chunk through the row-wise *steps*.

    ``deliver(key, output, numbered)`` is called once per chunk, in chunk order, as soon as
    all of its rows are through; *numbered* lists the (prompt, sample) pairs its rows took.
    A row that raises (a run stopper, ``on_error="raise"``) cancels the rest and the error
    propagates; a cancelled stream cancels every row it started.
    """
    batched = any(step.batched for step in steps)
    window = asyncio.Semaphore(session.rows_in_flight(batched_step=batched))
    order: deque[_Chunk[K]] = deque()
    tasks: set[asyncio.Task[None]] = set()
    failure: list[BaseException] = []

    def flush() -> None:
        while order and order[0].admitted and order[0].left == 0:
            chunk = order.popleft()
            deliver(chunk.key, _gather(chunk), chunk.numbered)

    async def through(chunk: _Chunk[K], position: int) -> None:
        try:
            with session.numbering_into(chunk.numbered):
                out = await apply_steps(steps, chunk.frame.slice(position, 1), session)
        finally:
            window.release()
        chunk.rows[position] = out
        chunk.left -= 1
        flush()

    def settled(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not failure:
            failure.append(task.exception())  # type: ignore[arg-type]
            for other in tasks:
                other.cancel()

    try:
        for key, frame in chunks:
            chunk = _Chunk(key, frame, [None] * frame.height, frame.height)
            order.append(chunk)
            for position in range(frame.height):
                await window.acquire()
                if failure:
                    break
                task = asyncio.ensure_future(through(chunk, position))
                tasks.add(task)
                task.add_done_callback(settled)
            chunk.admitted = True
            if failure:
                break
            flush()
        while tasks and not failure:
            await asyncio.wait(set(tasks), return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if failure:
        raise failure[0]


async def stream_frame(
    steps: Sequence[Step], frame: pl.DataFrame, session: Session
) -> pl.DataFrame:
    """Stream the rows of one frame through the row-wise *steps*; the output in row order."""
    if frame.height == 0:
        return await apply_steps(steps, frame, session)
    outputs: list[pl.DataFrame] = []
    await stream_chunks(steps, [(0, frame)], session, lambda _, out, __: outputs.append(out))
    return outputs[0]


def _gather(chunk: _Chunk[K]) -> pl.DataFrame:
    """The chunk's output: its rows' outputs in input order."""
    import polars as pl

    rows = [row for row in chunk.rows if row is not None]
    kept = [row for row in rows if row.height]
    if not kept:  # every row was filtered out: an empty frame of the output's columns
        return rows[0]
    return pl.concat(kept, how="diagonal_relaxed")
