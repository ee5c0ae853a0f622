"""The best any scheduler can do on the pipeline bench's load: a model with no CPU at all.

    python bench/schedule.py

``bench/pipeline.py`` measures the recipe against the ideal, sum(latencies) / limit. That
ideal is out of reach for a finite input: the last calls' lognormal tail leaves slots
idle whatever the order. This script runs the same loads as pure asyncio sleeps (latency
scaled to a 20 ms median), so only the schedule counts, and prints the fraction of the
ideal for:

1. the pipeline: 300 rows, one call then three, limit 20, breadth first (every row
   admitted at once, the hand-written pipeline's schedule) and the recipe's schedule (at
   most 2 x limit rows in flight, each row's next calls queued as its first returns);
2. the CLI load: 1,000 rows of one call, limit 50, sigma 0.8.

Each figure is the mean of 5 seeds.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics

MEDIAN = 0.02


async def fraction_of_ideal(  # noqa: PLR0913 - the load's shape
    rows: int, then: int, limit: int, window: int | None, sigma: float, seed: int
) -> float:
    rng, slept = random.Random(seed), [0.0]
    slots = asyncio.Semaphore(limit)
    rows_in = asyncio.Semaphore(window) if window else None

    async def call() -> None:
        async with slots:
            latency = MEDIAN * math.exp(rng.gauss(0, sigma))
            slept[0] += latency
            await asyncio.sleep(latency)

    async def row() -> None:
        try:
            await call()
            await asyncio.gather(*(call() for _ in range(then)))
        finally:
            if rows_in is not None:
                rows_in.release()

    loop = asyncio.get_running_loop()
    started, tasks = loop.time(), []
    for _ in range(rows):
        if rows_in is not None:
            await rows_in.acquire()
        tasks.append(asyncio.ensure_future(row()))
    await asyncio.gather(*tasks)
    return slept[0] / limit / (loop.time() - started)


def mean_fraction(rows: int, then: int, limit: int, window: int | None, sigma: float) -> float:
    return statistics.mean(
        asyncio.run(fraction_of_ideal(rows, then, limit, window, sigma, seed)) for seed in range(5)
    )


def main() -> None:
    print("1. 300 rows, a call then three, limit 20: fraction of the ideal")
    for sigma in (0.8, 1.2):
        for label, window in (("breadth first, all rows", None), ("2 x limit rows", 40)):
            print(f"  sigma {sigma}, {label:24}: {mean_fraction(300, 3, 20, window, sigma):.3f}")
    print("2. 1,000 rows of one call, limit 50, sigma 0.8: fraction of the ideal")
    print(f"  {mean_fraction(1000, 0, 50, None, 0.8):.3f}")


if __name__ == "__main__":
    main()
