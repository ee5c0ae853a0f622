"""Recipe throughput against a hand-written asyncio loop over Instructor + LiteLLM.

Both run side by side in this one script against the loopback server (in a child
process) with lognormal latency (median 0.3 s, sigma 0.8): the baseline is the floor the
dependencies set, the ideal is sum(latencies) / in-flight limit.

    python bench/throughput.py            # 1,000 rows, as in docs/performance.md
    python bench/throughput.py --rows 200 # quicker

A last pass with zero latency compares the client CPU time per call of both sides;
bench/cpu.py measures that alone, in interleaved rounds, and profiles it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import polars as pl  # noqa: E402
from _loopback import ChildServer  # noqa: E402

from promptflow_dsl import InstructionList, Model, self_instruct  # noqa: E402


def documents(rows: int) -> list[str]:
    return [
        f"Document {i}: rivers carve valleys; glaciers move; deltas form at mouths."
        for i in range(rows)
    ]


def hand_caller(api_base: str, limit: int) -> Callable[[object, type], Awaitable[Any]]:
    """The baseline's call: Instructor over LiteLLM, under one semaphore of *limit*."""
    import instructor
    import litellm

    client = instructor.from_litellm(litellm.acompletion, mode=instructor.Mode.TOOLS)
    semaphore = asyncio.Semaphore(limit)

    async def call(messages: object, result_type: type) -> Any:
        async with semaphore:
            return await client.chat.completions.create(
                model="openai/bench",
                api_base=api_base,
                api_key="sk-bench",
                max_retries=0,
                messages=messages,
                response_model=result_type,
            )

    return call


async def hand_written(docs: list[str], api_base: str, limit: int) -> None:
    call = hand_caller(api_base, limit)
    await asyncio.gather(*(call(self_instruct.render(doc), InstructionList) for doc in docs))


def measure(run: Callable[[], object], server: ChildServer) -> tuple[float, float, float]:
    """Wall time, client CPU time, and the latency the server slept during *run*."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    slept, _ = server.take()
    return wall, cpu, slept


def compare(docs: list[str], limit: int, median: float) -> None:
    """Run both sides at one in-flight limit and latency, and print the figures."""
    frame = pl.DataFrame({"input": docs})
    with ChildServer(median=median, sigma=0.8, seed=limit) as server:
        model = Model("openai/bench", api_base=server.api_base, api_key="sk-bench")
        self_instruct("warm-up", model=model, cache=False)  # imports and connection pools
        server.take()
        step = self_instruct.step()
        sides = {
            "hand-written loop": measure(
                lambda: asyncio.run(hand_written(docs, server.api_base, limit)), server
            ),
            "recipe": measure(
                lambda: step.run(
                    frame, model=model, max_concurrency=limit, cache=False, progress=False
                ),
                server,
            ),
        }
    print(f"\nin-flight limit {limit}, median latency {median} s")
    for name, (wall, cpu, slept) in sides.items():
        ms_per_call = 1000 * cpu / len(docs)
        ideal = f", {slept / limit / wall:.3f} of ideal" if median else ""
        print(f"  {name:18} {wall:6.2f} s wall, {ms_per_call:5.2f} ms CPU/call{ideal}")
    (base_wall, base_cpu, base_slept), (ours_wall, ours_cpu, ours_slept) = sides.values()
    if median:
        # Latency-normalised: each side is divided by the latency it happened to draw.
        ratio = (ours_slept / ours_wall) / (base_slept / base_wall)
        print(f"  recipe / hand-written throughput: {ratio:.3f}")
    else:
        print(f"  recipe / hand-written CPU per call: {ours_cpu / base_cpu:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    print(f"{args.rows} rows of self_instruct, lognormal latency (median 0.3 s, sigma 0.8)")
    for limit, median in ((50, 0.3), (20, 0.3), (50, 0.0)):
        compare(documents(args.rows), limit, median)


if __name__ == "__main__":
    main()
