"""What the Ray engine's tests share: a model at the loopback server, and arrival times."""

import threading
import time

from promptflow_dsl import Model
from promptflow_dsl.testing import LoopbackServer, default_responder


def model_at(server: LoopbackServer, name: str = "openai/loopback-model", **options) -> Model:
    return Model(name, api_base=server.api_base, api_key="sk-test-key", **options)


class Arrivals:
    """A responder that notes when each request arrives and what it asked, then lets the
    server fabricate its reply (or answers with *first*, a list of scripted replies)."""

    def __init__(self, first=()):
        self.times: list[float] = []
        self.texts: list[str] = []
        self._first = list(first)
        self._lock = threading.Lock()

    def __call__(self, request):
        with self._lock:
            self.times.append(time.monotonic())
            self.texts.append(request.text)
            scripted = self._first.pop(0) if self._first else None
        return scripted or default_responder(request)


def collect(dataset):
    """Every row of a Ray Dataset, as one Polars frame (in no set order)."""
    import polars as pl
    import pyarrow as pa
    import ray

    tables = ray.get(dataset.to_arrow_refs())
    return pl.from_arrow(pa.concat_tables(tables, promote_options="default"))
