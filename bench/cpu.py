"""Client CPU time per call at zero latency: the recipe against a hand-written loop.

Both sides call the loopback server (in a child process, so its CPU never counts) with no
latency, so the client's CPU is the only cost. The baseline is the loop of
bench/throughput.py: Instructor over LiteLLM under one semaphore. The sides take turns,
in alternating order, and each round prints its ratio; the figure is the median round.

    python bench/cpu.py                       # 5 rounds of 500 rows
    python bench/cpu.py --rows 300 --rounds 3 # quicker
    python bench/cpu.py --profile recipe      # cProfile one side, top functions by own time

"recipe" runs without a cache, as bench/throughput.py does; "recipe, cached" writes each
reply to a fresh on-disk cache (the default in real use).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import polars as pl  # noqa: E402
from _loopback import ChildServer  # noqa: E402
from throughput import documents, hand_written  # noqa: E402

from promptflow_dsl import Model, Recipe, self_instruct  # noqa: E402

LIMIT = 50


def sides(docs: list[str], api_base: str, scratch: Path) -> dict[str, Callable[[], object]]:
    """Each side as a function that makes one call per document."""
    frame = pl.DataFrame({"input": docs})
    model = Model("openai/bench", api_base=api_base, api_key="sk-bench")
    step = self_instruct.step()
    runs = iter(range(10**6))

    def recipe(cache: bool) -> Callable[[], object]:
        def run() -> object:
            where = scratch / f"cache-{next(runs)}.sqlite" if cache else False
            return step.run(
                frame, model=model, max_concurrency=LIMIT, cache=where, progress=False
            )

        return run

    def on_this_thread() -> object:  # cProfile sees one thread: not the portal's
        return asyncio.run(
            Recipe((step,)).arun(frame, model=model, max_concurrency=LIMIT, cache=False, progress=False)
        )

    return {
        "hand-written loop": lambda: asyncio.run(hand_written(docs, api_base, LIMIT)),
        "recipe": recipe(cache=False),
        "recipe, cached": recipe(cache=True),
        "recipe, profiled": on_this_thread,
    }


def cpu_ms(run: Callable[[], object], calls: int) -> float:
    """Client CPU milliseconds per call of *run*."""
    started = time.process_time()
    run()
    return 1000 * (time.process_time() - started) / calls


def profile(run: Callable[[], object], top: int) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(run)
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=["hand", "recipe"], default=None)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    docs = documents(args.rows)
    with tempfile.TemporaryDirectory() as scratch, ChildServer(median=0.0) as server:
        runs = sides(docs, server.api_base, Path(scratch))
        if args.profile:
            side = runs["hand-written loop" if args.profile == "hand" else "recipe, profiled"]
            side()  # imports, connection pools, per-type preparation
            profile(side, args.top)
            return
        names = ["hand-written loop", "recipe", "recipe, cached"]
        for name in names:  # imports, connection pools, per-type preparation
            runs[name]()
        print(f"{args.rows} rows of self_instruct at zero latency, limit {LIMIT}: ms CPU/call")
        figures: dict[str, list[float]] = {name: [] for name in names}
        for round_ in range(args.rounds):
            order = names if round_ % 2 == 0 else names[::-1]
            measured = {name: cpu_ms(runs[name], args.rows) for name in order}
            for name, ms in measured.items():
                figures[name].append(ms)
            base = measured[names[0]]
            line = ", ".join(
                f"{name} {measured[name]:.2f} ({measured[name] / base:.3f}x)" for name in names
            )
            print(f"  round {round_ + 1}: {line}")
        base = figures[names[0]]
        print("median over rounds:")
        for name in names:
            ratios = [ms / b for ms, b in zip(figures[name], base, strict=True)]
            print(
                f"  {name:18} {statistics.median(figures[name]):6.2f} ms/call, "
                f"{statistics.median(ratios):.3f}x the hand-written loop"
            )


if __name__ == "__main__":
    main()
