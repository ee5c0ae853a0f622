"""A content-addressed cache of replies, on disk in SQLite (WAL mode).

The key is a SHA-256 of canonical JSON of everything that shapes a reply: the model
string and API base, the decoding parameters, the messages or raw prompt, the result
schema, the decoding mode and the sample index. Never the API key, the timeout or the
concurrency. The cache keeps the raw reply as well as the parsed result, so a changed
parser re-parses without a call. Each reply is committed as soon as it arrives, so a run
killed halfway loses no finished call.

The default file is ``$PROMPTFLOW_CACHE_DIR/cache.sqlite``, else
``$XDG_CACHE_HOME/promptflow_dsl/cache.sqlite``, else ``~/.cache/promptflow_dsl/cache.sqlite``.

>>> import tempfile, pathlib
>>> cache = ReplyCache(pathlib.Path(tempfile.mkdtemp()) / "c.sqlite")
>>> cache.put("k", CachedReply('{"a": 1}', '{"a": 1}', "m", 3, 4, 0.01))
>>> cache.get("k").output_tokens, cache.get("other")
(4, None)
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._model import Model
from .._program import PromptProgram
from .._schema import json_schema

__all__ = ["CachedReply", "ReplyCache", "cache_key", "default_cache_path", "open_cache"]


def default_cache_path() -> Path:
    """Where the cache lives unless told otherwise."""
    if os.environ.get("PROMPTFLOW_CACHE_DIR"):
        return Path(os.environ["PROMPTFLOW_CACHE_DIR"]) / "cache.sqlite"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "promptflow_dsl" / "cache.sqlite"


def cache_key(program: PromptProgram[Any], model: Model, sample: int = 0) -> str:
    """The content hash of one request. Stable across processes and hash seeds."""
    request = {
        "model": model.name,
        "api_base": model.api_base,
        "params": {**program.params, **model.call_params()},
        "messages": list(program.messages),
        "prompt": program.prompt,
        "schema": json_schema(program.result_type),
        "mode": model.mode or "auto",
        "decoding": program.decoding,
        "sample": sample,
    }
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    """A stored reply: the raw text and the parsed result (JSON), with its usage."""

    raw_text: str | None
    result_json: str
    model_name: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    via_text: bool = False
    truncated: bool = False


class ReplyCache:
    """Replies by key, in one SQLite file that several processes may share."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=30, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, raw_text TEXT,"
            " result_json TEXT NOT NULL, model_name TEXT NOT NULL, input_tokens INTEGER,"
            " output_tokens INTEGER, cost_usd REAL, via_text INTEGER NOT NULL,"
            " truncated INTEGER NOT NULL,"
            " created REAL DEFAULT (julianday('now')))"
        )

    def __repr__(self) -> str:
        return f"ReplyCache({str(self.path)!r})"

    def __bool__(self) -> bool:
        return True  # an empty cache is still a cache: `cache or None` must not drop it

    def get(self, key: str) -> CachedReply | None:
        """The stored reply for *key*, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT raw_text, result_json, model_name, input_tokens, output_tokens, cost_usd,"
                " via_text, truncated"
                " FROM replies WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        raw, result, model, tokens_in, tokens_out, cost, via_text, truncated = row
        return CachedReply(
            raw, result, model, tokens_in, tokens_out, cost,
            via_text=bool(via_text), truncated=bool(truncated),
        )  # fmt: skip

    def put(self, key: str, reply: CachedReply) -> None:
        """Store a reply (committed at once)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies (key, raw_text, result_json, model_name,"
                " input_tokens, output_tokens, cost_usd, via_text, truncated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    reply.raw_text,
                    reply.result_json,
                    reply.model_name,
                    reply.input_tokens,
                    reply.output_tokens,
                    reply.cost_usd,
                    reply.via_text,
                    reply.truncated,
                ),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM replies").fetchone()[0])

    def clear(self) -> int:
        """Delete every reply; return how many there were."""
        with self._lock:
            count = self._db.execute("DELETE FROM replies").rowcount
        return int(count)

    def close(self) -> None:
        """Close the file."""
        self._db.close()


_open: dict[Path, ReplyCache] = {}


def open_cache(cache: bool | str | Path | ReplyCache) -> ReplyCache | None:  # noqa: FBT001
    """The cache a run asked for: True the default one, False none, a path that file.

    Caches are opened once per process and shared.
    """
    if cache is False:
        return None
    if isinstance(cache, ReplyCache):
        return cache
    path = default_cache_path() if cache is True else Path(cache)
    path = path.expanduser().resolve()
    if path not in _open:
        _open[path] = ReplyCache(path)
    return _open[path]
