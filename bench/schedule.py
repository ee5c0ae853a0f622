"""The best any scheduler can do on the pipeline bench's load: a model with no CPU at all.

    python bench/schedule.py

``bench/pipeline.py`` measures the recipe against the ideal, sum(latencies) / limit. That
ideal is out of reach for a finite input: the last calls' lognormal tail leaves slots
idle whatever the order. This script runs the same load (300 rows, one call then three,
limit 20, lognormal latency scaled to a 20 ms median) as pure asyncio sleeps, so only the
schedule counts, and prints the fraction of the ideal for:

- breadth first, every row admitted at once (the hand-written pipeline's schedule);
- the recipe's schedule: at most 2 x limit rows in flight, each row's next calls queued
  as soon as its first returns.

Each figure is the mean of 5 seeds.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics

ROWS, LIMIT, MEDIAN = 300, 20, 0.02


async def fraction_of_ideal(window: int | None, sigma: float, seed: int) -> float:
    rng, slept = random.Random(seed), [0.0]
    slots = asyncio.Semaphore(LIMIT)
    rows_in = asyncio.Semaphore(window) if window else None

    async def call() -> None:
        async with slots:
            latency = MEDIAN * math.exp(rng.gauss(0, sigma))
            slept[0] += latency
            await asyncio.sleep(latency)

    async def row() -> None:
        try:
            await call()
            await asyncio.gather(*(call() for _ in range(3)))
        finally:
            if rows_in is not None:
                rows_in.release()

    loop = asyncio.get_running_loop()
    started, tasks = loop.time(), []
    for _ in range(ROWS):
        if rows_in is not None:
            await rows_in.acquire()
        tasks.append(asyncio.ensure_future(row()))
    await asyncio.gather(*tasks)
    return slept[0] / LIMIT / (loop.time() - started)


def main() -> None:
    print(f"{ROWS} rows, a call then three, limit {LIMIT}: fraction of the ideal (5 seeds)")
    for sigma in (0.8, 1.2):
        for label, window in (("breadth first, all rows", None), ("2 x limit rows", 2 * LIMIT)):
            runs = [asyncio.run(fraction_of_ideal(window, sigma, seed)) for seed in range(5)]
            print(f"  sigma {sigma}, {label:24}: {statistics.mean(runs):.3f}")


if __name__ == "__main__":
    main()
