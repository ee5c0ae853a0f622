"""Soak: the bundled recipe under faults, killed with SIGKILL at random points and resumed.

Runs ``recipes/self_instruct.py`` (self_instruct >> explode >> text_generation) over N
documents through ``promptflow run`` against a loopback server in a child process that
answers 20% of requests with a 429, 5% with a 500, hangs on 2% and sends 5% truncated
bodies. Run A goes straight through; run B is killed with SIGKILL at K random points and
started again each time. It prints:

- rows lost and rows duplicated in B (both must be 0),
- whether B's output equals A's (it must, usage columns aside),
- the calls B's output counts against the requests the server saw during B,
- repeated calls: successful replies B asked for again after a kill, beyond what A needed
  (at most the in-flight limit per kill).

    python bench/soak.py                 # 5,000 documents, 5 kills (about 15 minutes)
    python bench/soak.py --rows 500 --kills 3
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "self_instruct.py"
CONCURRENCY = 50


def _serve(conn: Connection, seed: int) -> None:
    """A loopback server whose faults are drawn per request; it counts clean replies."""
    from promptflow_dsl.testing import LoopbackServer, Reply, default_responder

    rng = random.Random(seed)
    clean: collections.Counter[str] = collections.Counter()

    def respond(request):  # type: ignore[no-untyped-def]
        draw = rng.random()
        if draw < 0.20:
            return Reply(status=429, headers={"Retry-After": "0.2"})
        if draw < 0.25:
            return Reply(status=500)
        if draw < 0.27:
            return Reply(delay=30.0)  # a hang: the client's timeout trips first
        if draw < 0.32:
            return Reply(raw_body='{"id": "x", "object": "chat.completion", "choices": [{"in')
        digest = hashlib.sha256(json.dumps(request.body, sort_keys=True).encode()).hexdigest()
        clean[digest] += 1
        return default_responder(request)

    latency = lambda r: r.lognormvariate(-3.0, 0.5)  # noqa: E731 - median 50 ms
    with LoopbackServer(latency=latency, seed=seed, responder=respond) as server:
        conn.send(server.api_base)
        while (message := conn.recv()) != "stop":
            if message == "take":
                conn.send((server.stats.requests, dict(clean)))
                server.reset()
                clean.clear()


def _documents(path: Path, rows: int) -> None:
    rng = random.Random(1)
    topics = ["rivers", "bread", "binary search", "volcanoes", "tides", "compilers", "bees"]
    with path.open("w") as handle:
        for i in range(rows):
            topic = rng.choice(topics)
            text = f"Document {i} is about {topic}. It explains how {topic} work, step by step."
            handle.write(json.dumps({"input": text}) + "\n")


def _command(source: Path, output: Path, api_base: str) -> list[str]:
    return [
        sys.executable, "-m", "promptflow_dsl", "run", str(RECIPE), "-i", str(source),
        "-o", str(output), "--model", "openai/soak", "--api-base", api_base,
        "--max-concurrency", str(CONCURRENCY), "--max-attempts", "12", "--chunk-size", "500",
        "--set", "self_instruct.model.timeout=2", "--set", "text_generation.model.timeout=2",
        "--no-progress",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=_serve, args=(child, args.seed), daemon=True)
    server.start()
    api_base = parent.recv()

    def take() -> tuple[int, dict[str, int]]:
        parent.send("take")
        return parent.recv()

    with tempfile.TemporaryDirectory(prefix="promptflow-soak-") as scratch:
        folder = Path(scratch)
        source = folder / "documents.jsonl"
        _documents(source, args.rows)
        env = {**os.environ, "OPENAI_API_KEY": "sk-soak", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}

        env_a = {**env, "PROMPTFLOW_CACHE_DIR": str(folder / "cache-a")}
        started = time.perf_counter()
        straight = subprocess.run(
            _command(source, folder / "a.parquet", api_base), env=env_a, capture_output=True
        )
        took = time.perf_counter() - started
        if straight.returncode != 0:
            sys.exit(f"run A failed: {straight.stderr.decode()[-2000:]}")
        _, clean_a = take()
        print(f"run A: {args.rows} documents straight through in {took:.0f} s", flush=True)

        env_b = {**env, "PROMPTFLOW_CACHE_DIR": str(folder / "cache-b")}
        output_b = folder / "b.parquet"
        for kill in range(args.kills):
            run = subprocess.Popen(
                _command(source, output_b, api_base), env=env_b, stderr=subprocess.DEVNULL
            )
            wait = rng.uniform(0.05, 0.8) * took / args.kills
            time.sleep(wait)
            if run.poll() is not None:
                print(f"kill {kill + 1}: the run had already finished", flush=True)
                continue
            run.send_signal(signal.SIGKILL)
            run.wait()
            print(f"kill {kill + 1}: SIGKILL after {wait:.1f} s", flush=True)
        last = subprocess.run(_command(source, output_b, api_base), env=env_b, capture_output=True)
        if last.returncode != 0:
            sys.exit(f"run B failed: {last.stderr.decode()[-2000:]}")
        requests_b, clean_b = take()

        a, b = pl.read_parquet(folder / "a.parquet"), pl.read_parquet(output_b)
        meta = json.loads(pl.read_parquet_metadata(output_b)["promptflow_dsl"])
        documents = set(pl.read_ndjson(source)["input"])
    parent.send("stop")
    server.join(timeout=10)

    keys = ["input", "instruction"]
    missing_documents = len(documents - set(b["input"]))
    lost = a.join(b, on=keys, how="anti").height + missing_documents
    duplicated = b.height - b.unique(subset=keys).height - (a.height - a.unique(subset=keys).height)
    identical = a.drop("usage").equals(b.drop("usage"))
    repeated = sum(max(0, n - clean_a.get(digest, 0)) for digest, n in clean_b.items())
    print(f"rows: A {a.height}, B {b.height}; failed rows: A {a['error'].is_not_null().sum()}, "
          f"B {b['error'].is_not_null().sum()}")  # fmt: skip
    print(f"rows lost: {lost}")
    print(f"rows duplicated: {duplicated}")
    print(f"output identical to the uninterrupted run: {identical}")
    print(
        f"calls counted in B's output: {meta['totals']['calls']}; requests the server saw: {requests_b}"
    )
    print(
        f"repeated calls: {repeated} over {args.kills} kills (in-flight limit {CONCURRENCY} per kill)"
    )


if __name__ == "__main__":
    main()
