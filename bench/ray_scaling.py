"""Throughput of the Ray engine with 1, 2 and 4 workers, and of one machine, on a
latency-bound load: a loopback server (in a child process) that answers every call in
1 s, 10 calls in flight per worker, 400 rows of self_instruct (one call a row), read from
4 Parquet shards as `promptflow run --engine ray` reads them.

    python bench/ray_scaling.py                # as in docs/performance.md
    python bench/ray_scaling.py --rows 100     # quicker

Throughput is rows per second at the server, from the first request of a run to the end
of its last (the wall time, start of the workers included, is printed too). The ratios are
to one worker in the same run; the targets are 1.8 at 2 workers and 3.4 at 4.

A last pass at zero latency prints the CPU each call costs: this process alone for one
machine; for Ray, this process and every process of its local cluster (the workers, the
run's actors, Ray's own daemons). The loopback server's CPU never counts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray runs its workers at nice 15, below this process (and the one-machine engine, which
# runs in it): on a machine shared with other jobs that alone costs the workers CPU. Both
# sides run at the same priority here unless RAY_worker_niceness says otherwise.
os.environ.setdefault("RAY_worker_niceness", "0")

import polars as pl  # noqa: E402
from _loopback import ChildServer  # noqa: E402

from promptflow_dsl import Model, self_instruct  # noqa: E402

IN_FLIGHT = 10


def documents(rows: int) -> list[dict[str, str]]:
    return [{"input": f"Document {i}: rivers carve valleys; deltas form."} for i in range(rows)]


def shards(rows: int, folder: Path, count: int = 4) -> Any:
    """The documents as *count* Parquet shards in *folder*, read back as a Ray Dataset."""
    import ray.data

    folder.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(documents(rows))
    for index, part in enumerate(frame.iter_slices(-(-rows // count))):
        part.write_parquet(folder / f"part-{index}.parquet")
    return ray.data.read_parquet(str(folder))


def timed(run, server: ChildServer, rows: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Wall time of *run* and the rows per second the server saw."""
    server.take()
    started = time.perf_counter()
    out = run()
    wall = time.perf_counter() - started
    assert len(out) == rows, (len(out), rows)
    return wall, rows / server.span()


class CpuMeter:
    """CPU seconds that this process and its descendants (a local Ray cluster's daemons,
    workers and actors) spend while it runs, the loopback server aside. Processes are
    polled every 50 ms, so one that exits (a run's workers do) keeps what it spent."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        for process in [me, *me.children(recursive=True)]:
            if process.pid == self.server_pid:
                continue
            try:
                spent = sum(process.cpu_times()[:2])
            except psutil.Error:
                continue
            self.first.setdefault(process.pid, spent if process.pid in self.last else 0.0)
            self.last[process.pid] = spent

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> CpuMeter:
        self._sample()
        self.first = dict(self.last)  # what the processes alive now had spent before
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first.get(pid, 0.0) for pid in self.last)


def cpu_per_call(server: ChildServer, rows: int) -> None:
    """CPU ms per call at zero latency, one machine against Ray with 1 and 2 workers: the
    CPU of a run of *rows* rows less that of a run of a quarter as many (so the start-up of
    the workers, which imports LiteLLM in each, does not count), over the difference."""

    model = Model("openai/bench", api_base=server.api_base, api_key="sk-bench")
    recipe = self_instruct.step(num_instructions=2)
    pid = server.pid

    def local(count: int) -> None:
        frame = pl.DataFrame(documents(count))
        recipe.run(frame, model=model, max_concurrency=IN_FLIGHT, cache=False, progress=False)

    def on_ray(count: int, workers: int) -> None:
        out = recipe.run(
            shards(count, Path(tempfile.mkdtemp(prefix="ray-scaling-"))),
            model=model,
            max_concurrency=IN_FLIGHT,
            workers=workers,
            cpus_per_worker=0.25,
            cache=False,
        ).take_all()
        assert len(out) == count

    def marginal(run) -> float:  # type: ignore[no-untyped-def]
        spent = []
        for count in (rows // 4, rows):
            with CpuMeter(pid) as meter:
                run(count)
            spent.append(meter.seconds)
        return (spent[1] - spent[0]) / (rows - rows // 4) * 1000

    local(20)  # warm: LiteLLM imported here, Ray Data's helper actors up
    on_ray(20, 1)
    print(f"\nCPU per call at zero latency ({rows} rows less {rows // 4}), {IN_FLIGHT} in flight")
    base = marginal(local)
    print(f"{'one machine':<26}{base:>8.1f} ms")
    for workers in (1, 2):
        spent = marginal(lambda count, workers=workers: on_ray(count, workers))
        print(f"{f'ray, {workers} worker(s)':<26}{spent:>8.1f} ms{spent / base:>8.2f}x")


def scaling(rows: int, latency: float) -> None:
    """Throughput of 1, 2 and 4 workers, then of one machine, at *latency* s a call."""

    recipe = self_instruct.step(num_instructions=2)
    docs = documents(rows)
    print(
        f"{rows} rows of self_instruct, {latency:g} s a call, {IN_FLIGHT} in flight "
        f"per worker, {os.cpu_count()} cores, Ray workers at nice "
        f"{os.environ['RAY_worker_niceness']}"
    )
    print(f"{'engine':<26}{'wall s':>8}{'rows/s':>9}{'ratio':>8}{'ideal':>8}")
    with ChildServer(median=latency, sigma=0.0) as server:
        model = Model("openai/bench", api_base=server.api_base, api_key="sk-bench")
        base = None
        for workers in (1, 2, 4):
            dataset = shards(rows, Path(tempfile.mkdtemp(prefix="ray-scaling-")))

            def on_ray(dataset=dataset, workers=workers):  # type: ignore[no-untyped-def]
                return recipe.run(
                    dataset,
                    model=model,
                    max_concurrency=IN_FLIGHT,
                    workers=workers,
                    cpus_per_worker=0.25,
                    cache=False,
                ).take_all()

            wall, rate = timed(on_ray, server, rows)
            base = base or rate
            ideal = workers * IN_FLIGHT / latency
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

            wall, rate = timed(local, server, rows)
            print(
                f"{f'one machine, {limit} in flight':<26}{wall:>8.1f}{rate:>9.2f}"
                f"{rate / base:>8.2f}{limit / latency:>8.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--cpu-rows", type=int, default=800, help="0: no CPU pass")
    parser.add_argument("--only-cpu", action="store_true", help="the CPU pass alone")
    args = parser.parse_args()

    import ray

    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=300 * 2**20)
    if not args.only_cpu:
        scaling(args.rows, args.latency)
    if args.cpu_rows:
        with ChildServer(median=0.0, sigma=0.0) as server:
            cpu_per_call(server, args.cpu_rows)
    ray.shutdown()


if __name__ == "__main__":
    main()
