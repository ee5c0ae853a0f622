"""Throughput of the Ray engine with 1, 2 and 4 workers, and of one machine, on a
latency-bound load: a loopback server (in a child process) that answers every call in
1 s, 10 calls in flight per worker, 400 rows of self_instruct (one call a row).

    python bench/ray_scaling.py                # as in docs/performance.md
    python bench/ray_scaling.py --rows 100     # quicker

Throughput is rows per second at the server, from the first request of a run to the end
of its last (the time to start the workers is printed apart). The ratios are to one
worker in the same run; the targets are 1.8 at 2 workers and 3.4 at 4.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import polars as pl  # noqa: E402
from _loopback import ChildServer  # noqa: E402

from promptflow_dsl import Model, self_instruct  # noqa: E402

IN_FLIGHT = 10


def documents(rows: int) -> list[dict[str, str]]:
    return [{"input": f"Document {i}: rivers carve valleys; deltas form."} for i in range(rows)]


def timed(run, server: ChildServer, rows: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Wall time of *run* and the rows per second the server saw."""
    server.take()
    started = time.perf_counter()
    out = run()
    wall = time.perf_counter() - started
    assert len(out) == rows, (len(out), rows)
    return wall, rows / server.span()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--latency", type=float, default=1.0)
    args = parser.parse_args()

    import ray

    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=300 * 2**20)
    recipe = self_instruct.step(num_instructions=2)
    docs = documents(args.rows)
    print(
        f"{args.rows} rows of self_instruct, {args.latency:g} s a call, {IN_FLIGHT} in flight "
        f"per worker, {os.cpu_count()} cores"
    )
    print(f"{'engine':<26}{'wall s':>8}{'rows/s':>9}{'ratio':>8}{'ideal':>8}")
    with ChildServer(median=args.latency, sigma=0.0) as server:
        model = Model("openai/bench", api_base=server.api_base, api_key="sk-bench")
        base = None
        for workers in (1, 2, 4):
            dataset = ray.data.from_items(docs)

            def on_ray(dataset=dataset, workers=workers):  # type: ignore[no-untyped-def]
                return recipe.run(
                    dataset,
                    model=model,
                    max_concurrency=IN_FLIGHT,
                    workers=workers,
                    cpus_per_worker=0.25,
                    cache=False,
                ).take_all()

            wall, rate = timed(on_ray, server, args.rows)
            base = base or rate
            ideal = workers * IN_FLIGHT / args.latency
            print(
                f"{f'ray, {workers} worker(s)':<26}{wall:>8.1f}{rate:>9.2f}"
                f"{rate / base:>8.2f}{ideal:>8.1f}"
            )
        frame = pl.DataFrame(docs)
        for limit in (IN_FLIGHT, 4 * IN_FLIGHT):

            def local(limit=limit):  # type: ignore[no-untyped-def]
                return recipe.run(
                    frame, model=model, max_concurrency=limit, cache=False, progress=False
                )

            wall, rate = timed(local, server, args.rows)
            print(
                f"{f'one machine, {limit} in flight':<26}{wall:>8.1f}{rate:>9.2f}"
                f"{rate / base:>8.2f}{limit / args.latency:>8.1f}"
            )
    ray.shutdown()


if __name__ == "__main__":
    main()
