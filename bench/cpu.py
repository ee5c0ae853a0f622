"""Client CPU time per call at zero latency: the recipe against a hand-written loop.

Both sides call the loopback server (in a child process, so its CPU never counts) with no
latency, so the client's CPU is the only cost. The baseline is the loop of
bench/throughput.py: Instructor over LiteLLM under one semaphore. The sides take turns,
in alternating order, and each round prints its ratio; the figure is the median round.

    python bench/cpu.py                       # 7 rounds of 500 rows
    python bench/cpu.py --rows 300 --rounds 3 # quicker
    python bench/cpu.py --profile recipe      # where each ms of a call goes (or: hand)

"recipe" runs without a cache, as bench/throughput.py does; "recipe, cached" writes each
reply to a fresh on-disk cache (the default in real use).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
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

    def recipe(*, cache: bool) -> Callable[[], object]:
        def run() -> object:
            where = scratch / f"cache-{next(runs)}.sqlite" if cache else False
            return step.run(frame, model=model, max_concurrency=LIMIT, cache=where, progress=False)

        return run

    def on_this_thread() -> object:  # cProfile sees one thread: not the portal's
        return asyncio.run(
            Recipe((step,)).arun(
                frame, model=model, max_concurrency=LIMIT, cache=False, progress=False
            )
        )

    return {
        "hand-written loop": lambda: asyncio.run(hand_written(docs, api_base, LIMIT)),
        "recipe": recipe(cache=False),
        "recipe, cached": recipe(cache=True),
        "recipe, profiled": on_this_thread,
    }


def cpu_ms(run: Callable[[], object], calls: int) -> tuple[float, float, float]:
    """Client CPU milliseconds per call of *run*: all threads', this thread's, and the
    collector's (LiteLLM builds each request in a thread of the loop's executor)."""
    spent = [0.0, 0.0]

    def note(phase: str, _: object) -> None:
        if phase == "start":
            spent[1] = time.process_time()
        else:
            spent[0] += time.process_time() - spent[1]

    gc.callbacks.append(note)
    started, mine = time.process_time(), time.thread_time()
    try:
        run()
    finally:
        gc.callbacks.remove(note)
    total, mine = time.process_time() - started, time.thread_time() - mine
    return 1000 * total / calls, 1000 * mine / calls, 1000 * spent[0] / calls


# Where a call's CPU goes: the call chain from the row to the socket, outermost first.
# Each phase is a function's cumulative time less the next one's (so the phases add up).
CHAIN = (
    ("recipe: row, interpret, cache, accounting", "_llm_step.py", "one"),
    ("hand-written loop: semaphore", "throughput.py", "call"),
    ("ours: provider call, mode, plain result", "_providers.py", "call_provider"),
    ("Instructor: prepare the request", "patch.py", "new_create_async"),
    ("Instructor: retries, parse, validate", "retry.py", "retry_async_v2"),
    ("ours: send (budget, limiter, usage)", "_providers.py", "_chat"),
    ("LiteLLM: wrapper (setup, cost, logging)", "utils.py", "wrapper_async"),
    ("LiteLLM: acompletion, its executor hand-off", "main.py", "acompletion"),
    ("LiteLLM: OpenAI handler, response object", "openai.py", "acompletion"),
    ("openai SDK: transform params, parse reply", "completions.py", "create"),
    ("HTTP: httpx over aiohttp", "_client.py", "send"),
)
DETAILS = (
    (
        "  of which Instructor: reject_async_validators",
        "async_validators.py",
        "reject_async_validators",
    ),
    ("  of which Instructor: response_schema (new class)", "function_calls.py", "response_schema"),
    ("  of which LiteLLM: cost of the reply", "litellm_logging.py", "_response_cost_calculator"),
    ("  of which LiteLLM: function_setup", "utils.py", "function_setup"),
    ("  of which ours: cache key", "_cache.py", "cache_key"),
    ("  of which ours: cache put", "_cache.py", "put"),
)
OFF_CHAIN = (
    ("LiteLLM: success logging (its worker task)", "logging_worker.py", "_worker_loop"),
    ("recipe: rows to programs", "_llm_step.py", "_programs"),
    ("recipe: result columns", "_llm_step.py", "_columns"),
)


def cumulative(stats: pstats.Stats, file: str, function: str) -> float:
    """The largest cumulative time of a function named *function* in a file named *file*."""
    times = [
        row[3]
        for (path, _, name), row in stats.stats.items()  # type: ignore[attr-defined]
        if name == function and os.path.basename(path) == file
    ]
    return max(times, default=0.0)


def profile(run: Callable[[], object], calls: int, measured: tuple[float, float, float]) -> None:
    """Profile *run* (collector off), and print where each ms of a call goes: each phase's
    share of the profile, scaled to this thread's CPU measured without the profiler (less
    the collector's), then the executor threads' CPU and the collector's."""
    total_ms, thread_ms, gc_ms = measured
    profiler = cProfile.Profile()
    gc.disable()
    try:
        profiler.runcall(run)
    finally:
        gc.enable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    scale = (thread_ms - gc_ms) / (1000 * total / calls)
    found = [(label, cumulative(stats, f, fn)) for label, f, fn in CHAIN]
    found = [(label, t) for label, t in found if t > 0]
    chain_top = found[0][1] if found else 0.0
    off = [(label, cumulative(stats, f, fn)) for label, f, fn in OFF_CHAIN]

    def line(label: str, seconds: float) -> None:
        print(f"  {label:52} {scale * 1000 * seconds / calls:5.2f}")

    print(f"ms per call ({total_ms:.2f} measured; profile scaled by {scale:.2f}):")
    for (label, t), (_, inner) in zip(found, [*found[1:], ("", 0.0)], strict=True):
        line(label, t - inner)
    for label, f, fn in DETAILS:
        if (t := cumulative(stats, f, fn)) > 0:
            line(label, t)
    for label, t in off:
        if t > 0:
            line(label, t)
    line("event loop, other tasks", total - chain_top - sum(t for _, t in off))
    print(
        f"  {'LiteLLM: completion() in executor threads (request)':52} {total_ms - thread_ms:5.2f}"
    )
    print(f"  {'garbage collector':52} {gc_ms:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", choices=["hand", "recipe"], default=None)
    args = parser.parse_args()
    docs = documents(args.rows)
    with tempfile.TemporaryDirectory() as scratch, ChildServer(median=0.0) as server:
        runs = sides(docs, server.api_base, Path(scratch))
        if args.profile:
            side = runs["hand-written loop" if args.profile == "hand" else "recipe, profiled"]
            side()  # imports, connection pools, per-type preparation
            measured = sorted(cpu_ms(side, args.rows) for _ in range(args.rounds))
            profile(side, args.rows, measured[len(measured) // 2])
            return
        names = ["hand-written loop", "recipe", "recipe, cached"]
        for name in names:  # imports, connection pools, per-type preparation
            runs[name]()
        print(f"{args.rows} rows of self_instruct at zero latency, limit {LIMIT}: ms CPU/call")
        figures: dict[str, list[float]] = {name: [] for name in names}
        for round_ in range(args.rounds):
            order = names if round_ % 2 == 0 else names[::-1]
            measured = {name: cpu_ms(runs[name], args.rows)[0] for name in order}
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
