"""A cached re-run: the second run of a finished recipe makes zero calls.

10,000 rows of text_generation against the loopback server (in a child process, zero
latency): the first run fills a fresh cache, the second is served from it.

    python bench/cached_rerun.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import polars as pl  # noqa: E402
from _loopback import ChildServer  # noqa: E402

from promptflow_dsl import Model, text_generation  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    frame = pl.DataFrame(
        {"instruction": [f"Question number {i}: why is the sky blue?" for i in range(args.rows)]}
    )
    step = text_generation.step()
    with tempfile.TemporaryDirectory() as folder, ChildServer(median=0.0) as server:
        model = Model("openai/bench", api_base=server.api_base, api_key="sk-bench")
        cache = Path(folder) / "cache.sqlite"
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            result = step.execute(
                frame, model=model, cache=cache, max_concurrency=50, progress=False
            )
            timings.append(time.perf_counter() - started)
            _, calls = server.take()
            print(
                f"run {len(timings)}: {calls:,} calls, {result.summary.cache_hits:,} cache hits, {timings[-1]:.1f} s"
            )
    print(
        f"cached re-run of {args.rows:,} rows: {timings[1]:.1f} s, {timings[0] / timings[1]:.1f}x faster than the first run"
    )


if __name__ == "__main__":
    main()
