"""The reply cache of a cluster run: one SQLite file, served to every worker by one actor.

Every worker reads and stores replies under the same content keys as a run on one machine,
through :class:`CacheServer`, an actor on the driver's node that owns the file. No
filesystem needs to be shared (SQLite's WAL mode does not work over network filesystems),
and the file is the one a run on that machine uses, so a cluster run and a local run
share their replies. Each reply is committed before the worker goes on, so a killed
worker or driver loses no finished call.

>>> import tempfile, pathlib
>>> from promptflow_dsl._engine._cache import CachedReply
>>> server = CacheServer(pathlib.Path(tempfile.mkdtemp()) / "c.sqlite")
>>> server.put("k", CachedReply('{"a": 1}', '{"a": 1}', "m", 3, 4, 0.01))
>>> server.get("k").output_tokens, server.get("other"), server.size()
(4, None, 1)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._engine._cache import CachedReply, ReplyCache

__all__ = ["CacheServer", "SharedCache", "start_cache_server"]


class CacheServer:
    """A :class:`ReplyCache` file, read and written for every worker (a Ray actor)."""

    def __init__(self, path: str | Path) -> None:
        self._cache = ReplyCache(path)

    def get(self, key: str) -> CachedReply | None:
        """The stored reply for *key*, or None."""
        return self._cache.get(key)

    def put(self, key: str, reply: CachedReply) -> None:
        """Store a reply, committed before this returns."""
        self._cache.put(key, reply)

    def size(self) -> int:
        """How many replies the file holds."""
        return len(self._cache)

    def read_only(self) -> bool:
        """True when the file cannot be written (replies are read, not stored)."""
        return self._cache.read_only


def start_cache_server(path: Path) -> Any:
    """A :class:`CacheServer` actor for the file at *path* on the driver's node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(CacheServer).options(num_cpus=0, scheduling_strategy=here)
    return actor.remote(str(path))


class SharedCache(ReplyCache):
    """A worker's view of the run's cache: every read and write goes to the cache actor.

    It opens no file of its own (the actor owns the file), so it does not call
    ``ReplyCache.__init__``; it answers what a session asks of a cache.
    """

    def __init__(self, server: Any, path: str | Path) -> None:
        self.server = server
        self.path = Path(path)
        self.read_only = False

    def __repr__(self) -> str:
        return f"SharedCache({str(self.path)!r})"

    def get(self, key: str) -> CachedReply | None:
        """The stored reply for *key*, or None (one round trip to the cache actor)."""
        import ray

        reply: CachedReply | None = ray.get(self.server.get.remote(key))
        return reply

    def put(self, key: str, reply: CachedReply) -> None:
        """Store a reply; returns once the cache actor has committed it."""
        import ray

        ray.get(self.server.put.remote(key, reply))

    def __len__(self) -> int:
        import ray

        return int(ray.get(self.server.size.remote()))

    def clear(self) -> int:
        """Refused: a worker does not clear the run's cache."""
        message = "a worker does not clear the run's cache; use `promptflow cache clear`"
        raise NotImplementedError(message)

    def close(self) -> None:
        """Nothing to close: the cache actor owns the file."""
