"""A loopback server in a child process, so its CPU time never counts against the client.

The child records every latency it sleeps, so a benchmark can compute the ideal time.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from multiprocessing.connection import Connection


def _serve(conn: Connection, median: float, sigma: float, seed: int) -> None:
    from promptflow_dsl.testing import LoopbackServer

    slept: list[float] = []
    span: list[float] = []  # the first arrival and the latest end since the last take

    def latency(rng):  # type: ignore[no-untyped-def]
        value = rng.lognormvariate(math.log(median), sigma) if median > 0 else 0.0
        slept.append(value)
        now = time.time()
        span[:] = [span[0] if span else now, max(now + value, span[1] if span else 0.0)]
        return value

    with LoopbackServer(latency=latency, seed=seed) as server:
        conn.send(server.api_base)
        while (message := conn.recv()) != "stop":
            if message == "take":
                conn.send((sum(slept), len(slept)))
                slept.clear()
                span.clear()
            elif message == "span":
                conn.send(span[1] - span[0] if span else 0.0)


class ChildServer:
    """``with ChildServer(median=0.3, sigma=0.8) as server: server.api_base; server.take()``"""

    def __init__(self, *, median: float, sigma: float = 0.8, seed: int = 0) -> None:
        self._parent, child = mp.Pipe()
        self._process = mp.get_context("spawn").Process(
            target=_serve, args=(child, median, sigma, seed), daemon=True
        )

    def __enter__(self) -> ChildServer:
        self._process.start()
        self.api_base: str = self._parent.recv()
        return self

    @property
    def pid(self) -> int:
        """The server's process (so its CPU can be left out)."""
        return int(self._process.pid or 0)

    def take(self) -> tuple[float, int]:
        """The latencies slept since the last take: their sum and count."""
        self._parent.send("take")
        return self._parent.recv()

    def span(self) -> float:
        """Seconds from the first request since the last take to the end of the latest one
        (a run's time at the server, without its start-up)."""
        self._parent.send("span")
        return self._parent.recv()

    def __exit__(self, *exc: object) -> None:
        self._parent.send("stop")
        self._process.join(timeout=10)
