"""A two-step recipe against a hand-written asyncio pipeline, and the CLI across chunks.

    python bench/pipeline.py               # as in docs/performance.md (about 15 minutes)
    python bench/pipeline.py --docs 100    # quicker

1. ``self_instruct.step(num_instructions=3) >> explode >> text_generation.step()`` over
   the documents, against a hand-written pipeline in which each row calls Instructor over
   LiteLLM and starts its second calls as soon as its first returns, at the same in-flight
   limit (20). Lognormal latency, median 0.3 s, with sigma 0.8 and a heavy tail (1.2).
   Each side meets a fresh server with the same seed (the same latencies, in the order
   requests arrive) and is divided by the latency it drew (latency-normalised); the
   ratio is the mean over a few seeds, since one slow call near the end moves it.
2. The same recipe at median 1.0 s, where CPU is not the bound: the fraction of the
   ideal (sum of latencies / limit).
3. ``promptflow run`` over 1,000 documents with ``--chunk-size 100`` against the same
   command with one chunk, median 0.5 s, limit 50: the fraction of the ideal, timed at
   the server (first request to last reply), so the start-up of Python is left out.

The loopback server runs in a child process, so its CPU never counts against the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import polars as pl  # noqa: E402
from _loopback import ChildServer  # noqa: E402
from throughput import documents, hand_caller, measure  # noqa: E402

from promptflow_dsl import Model, explode, self_instruct, text_generation  # noqa: E402

RECIPE = (
    self_instruct.step(num_instructions=3)
    >> explode("instructions", into="instruction")
    >> text_generation.step()
)


async def hand_written(docs: list[str], api_base: str, limit: int) -> None:
    """The baseline: one semaphore over every call; a row's second calls start at once."""
    call = hand_caller(api_base, limit)

    async def row(doc: str) -> None:
        listing = await call(
            self_instruct.render(doc, num_instructions=3), self_instruct.result_type
        )
        await asyncio.gather(
            *(
                call(text_generation.render(instruction), text_generation.result_type)
                for instruction in listing.instructions  # type: ignore[attr-defined]
            )
        )

    await asyncio.gather(*(row(doc) for doc in docs))


def side(run: Callable[[str, Model], object], sigma: float, median: float, seed: int):
    """Wall time and latency slept of one side, against a fresh server with this seed, so
    both sides draw the same latencies in the order their requests arrive."""
    with ChildServer(median=median, sigma=sigma, seed=seed) as server:
        model = Model("openai/bench", api_base=server.api_base, api_key="sk-bench")
        self_instruct("warm-up", model=model, cache=False)  # imports and connection pools
        server.take()
        wall, _, slept = measure(lambda: run(server.api_base, model), server)
    return wall, slept


def pipeline(docs: list[str], sigma: float, median: float, limit: int, seeds: int) -> None:
    frame = pl.DataFrame({"input": docs})

    def recipe(api_base: str, model: Model) -> object:
        return RECIPE.run(frame, model=model, max_concurrency=limit, cache=False, progress=False)

    def by_hand(api_base: str, model: Model) -> object:
        return asyncio.run(hand_written(docs, api_base, limit))

    ratios, fractions = [], []
    for seed in range(seeds):
        ours_wall, ours_slept = side(recipe, sigma, median, seed)
        fractions.append(ours_slept / limit / ours_wall)
        if median >= 1.0:  # at 1.0 s only the fraction of the ideal is asked for
            continue
        base_wall, base_slept = side(by_hand, sigma, median, seed)
        ratios.append((ours_slept / ours_wall) / (base_slept / base_wall))
        print(
            f"    seed {seed}: hand-written {base_wall:6.2f} s "
            f"({base_slept / limit / base_wall:.3f} of ideal), recipe {ours_wall:6.2f} s "
            f"({fractions[-1]:.3f} of ideal); recipe / hand-written {ratios[-1]:.3f}"
        )
    line = f"  median {median} s, sigma {sigma}: recipe {statistics.mean(fractions):.3f} of ideal"
    if ratios:
        line += f", recipe / hand-written {statistics.mean(ratios):.3f} (mean of {seeds} seeds)"
    print(line)


def cli_chunks(docs: list[str], median: float, limit: int, chunk_size: int) -> None:
    figures = {}
    for size in (len(docs), chunk_size):  # each against a fresh server with the same seed
        with tempfile.TemporaryDirectory() as folder, ChildServer(median=median, seed=5) as server:
            scratch = Path(folder)
            recipe = scratch / "recipe.py"
            recipe.write_text(
                "from promptflow_dsl import self_instruct\nrecipe = self_instruct.step()\n"
            )
            source = scratch / "docs.jsonl"
            source.write_text("".join(json.dumps({"input": doc}) + "\n" for doc in docs))
            env = {**os.environ, "PROMPTFLOW_CACHE_DIR": str(scratch / "cache"),
                   "OPENAI_API_KEY": "sk-bench"}  # fmt: skip
            command = [
                sys.executable, "-m", "promptflow_dsl", "run", str(recipe), "-i", str(source),
                "-o", str(scratch / "out.parquet"), "--model", "openai/bench", "--api-base",
                server.api_base, "--max-concurrency", str(limit), "--chunk-size", str(size),
                "--no-cache", "--no-progress",
            ]  # fmt: skip
            started = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            wall = time.perf_counter() - started
            span = server.span()
            slept, _ = server.take()
        figures[size] = slept / limit / span
        print(
            f"  --chunk-size {size:5}: {wall:6.2f} s wall, {span:6.2f} s at the server, "
            f"{figures[size]:.3f} of ideal"
        )
    print(f"  chunked / one chunk: {figures[chunk_size] / figures[len(docs)]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--cli-docs", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only-cli", action="store_true", help="part 3 alone")
    parser.add_argument("--only-pipeline", action="store_true", help="parts 1 and 2 alone")
    args = parser.parse_args()
    docs = documents(args.docs)
    if args.only_cli:
        print(f"3. promptflow run, {args.cli_docs} documents, median 0.5 s, limit 50")
        cli_chunks(documents(args.cli_docs), median=0.5, limit=50, chunk_size=100)
        return
    print(f"1. {args.docs} documents, self_instruct (3) >> explode >> text_generation, limit 20")
    for sigma in (0.8, 1.2):
        pipeline(docs, sigma, median=0.3, limit=20, seeds=args.seeds)
    print("2. the same at median 1.0 s")
    pipeline(docs, 0.8, median=1.0, limit=20, seeds=1)
    if args.only_pipeline:
        return
    print(f"3. promptflow run, {args.cli_docs} documents, median 0.5 s, limit 50")
    cli_chunks(documents(args.cli_docs), median=0.5, limit=50, chunk_size=100)


if __name__ == "__main__":
    main()
