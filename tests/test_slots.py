"""RankedSlots: served by rank, then arrival; no slot is ever lost to a cancellation."""

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from promptflow_dsl._engine._slots import RankedSlots


def test_a_freed_slot_goes_to_the_lowest_rank_then_the_earliest():
    async def scenario() -> list[str]:
        slots, went = RankedSlots(1), []
        release = asyncio.Event()

        async def holder() -> None:
            async with slots.hold(5):
                await release.wait()

        async def call(name: str, rank: int) -> None:
            async with slots.hold(rank):
                went.append(name)

        first = asyncio.ensure_future(holder())
        await asyncio.sleep(0)
        waiters = [
            asyncio.ensure_future(call(name, rank))
            for name, rank in [("b1", 1), ("a0", 0), ("c1", 1), ("d0", 0)]
        ]
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, *waiters)
        return went

    assert asyncio.run(scenario()) == ["a0", "d0", "b1", "c1"]


@given(
    size=st.integers(1, 4),
    plan=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.booleans()), max_size=20),
)
def test_cancelling_waiters_and_holders_at_any_point_leaves_every_slot_free(size, plan):
    async def scenario() -> None:
        slots = RankedSlots(size)
        holding = 0

        async def call(rank: int, hold_for: int) -> None:
            nonlocal holding
            async with slots.hold(rank):
                holding += 1
                assert holding <= size
                for _ in range(hold_for):
                    await asyncio.sleep(0)
                holding -= 1

        tasks = [asyncio.ensure_future(call(rank, hold)) for rank, hold, _ in plan]
        for step, (_, _, cancel) in enumerate(plan):
            await asyncio.sleep(0)
            if cancel:
                tasks[step].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Every slot is free again: *size* holders get in without waiting.
        entered = []
        for _ in range(size):
            stack = slots.hold(0)
            await asyncio.wait_for(stack.__aenter__(), timeout=1)
            entered.append(stack)
        for stack in entered:
            await stack.__aexit__(None, None, None)

    asyncio.run(scenario())
