"""A content-addressed cache of replies, on disk in SQLite (WAL mode).

The key is a SHA-256 of canonical JSON of everything that shapes a reply: the model
string and API base, the decoding parameters, the messages or raw prompt, the result
schema, the decoding mode and the sample index. Never the API key, the timeout or the
concurrency. The cache keeps the raw reply as well as the parsed result, so a changed
parser re-parses without a call. Each reply is committed as soon as it arrives, so a run
killed halfway loses no finished call.

The default file is ``$PROMPTFLOW_CACHE_DIR/cache.sqlite``, else
``$XDG_CACHE_HOME/promptflow_dsl/cache.sqlite``, else ``~/.cache/promptflow_dsl/cache.sqlite``.

The cache does not stop a run on its own account. A damaged file (cut short, overwritten)
is moved aside to ``cache.sqlite.corrupt-<time>`` with one warning on the
``promptflow_dsl`` logger, and a fresh file takes its place: the replies it held are
fetched again. A file or folder that cannot be written is read from, and new replies are
not stored. A full disk alone raises, :class:`~promptflow_dsl.StorageFullError`, because
every later reply would be paid for and lost.

>>> import tempfile, pathlib
>>> cache = ReplyCache(pathlib.Path(tempfile.mkdtemp()) / "c.sqlite")
>>> cache.put("k", CachedReply('{"a": 1}', '{"a": 1}', "m", 3, 4, 0.01))
>>> cache.get("k").output_tokens, cache.get("other")
(4, None)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from .._errors import StorageFullError
from .._model import Model
from .._program import PromptProgram
from .._schema import canonical_json, json_schema_text

__all__ = ["CachedReply", "ReplyCache", "cache_key", "default_cache_path", "open_cache"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

CHECKED_AT_OPEN_MAX_BYTES = 64 * 2**20
"""A file up to this size is checked whole when opened (``PRAGMA quick_check`` reads every
page: some 0.2 s at this size); damage in a larger file is found when a read or a write
reaches it, and a file cut short is found at open whatever its size."""


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
        "mode": model.mode or "auto",
        "decoding": program.decoding,
        "sample": sample,
    }
    # The canonical JSON of the request with its "schema" too. That key sorts last, so the
    # result type's schema text (serialised once per type) closes the object: the same
    # bytes as serialising it in place.
    canonical = f'{canonical_json(request)[:-1]},"schema":{json_schema_text(program.result_type)}}}'
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
    """Replies by key, in one SQLite file that several processes may share.

    ``read_only`` is True when the file or its folder cannot be written: replies are read
    from it, and new ones are not stored.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.read_only = False
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None  # of the file this object opened
        try:
            self._connect()
        except sqlite3.DatabaseError as exc:
            if _trouble(exc) == "full":  # no room to create the file
                raise _storage_error(self.path, exc) from None
            if _trouble(exc) != "corrupt":
                raise
            if self._set_aside(exc):
                self._connect()

    def __repr__(self) -> str:
        return f"ReplyCache({str(self.path)!r})"

    def __bool__(self) -> bool:
        return True  # an empty cache is still a cache: `cache or None` must not drop it

    def get(self, key: str) -> CachedReply | None:
        """The stored reply for *key*, or None."""
        row = self._use(
            lambda db: db.execute(
                "SELECT raw_text, result_json, model_name, input_tokens, output_tokens, cost_usd,"
                " via_text, truncated"
                " FROM replies WHERE key = ?",
                (key,),
            ).fetchone(),
            otherwise=None,
        )
        if row is None:
            return None
        raw, result, model, tokens_in, tokens_out, cost, via_text, truncated = row
        return CachedReply(
            raw, result, model, tokens_in, tokens_out, cost,
            via_text=bool(via_text), truncated=bool(truncated),
        )  # fmt: skip

    def put(self, key: str, reply: CachedReply) -> None:
        """Store a reply (committed at once); skipped when the cache is read-only.

        Raises :class:`StorageFullError` when the disk has no room for it.
        """
        if self.read_only:
            return
        row = (
            key,
            reply.raw_text,
            reply.result_json,
            reply.model_name,
            reply.input_tokens,
            reply.output_tokens,
            reply.cost_usd,
            reply.via_text,
            reply.truncated,
        )
        try:
            self._use(
                lambda db: db.execute(
                    "INSERT OR REPLACE INTO replies (key, raw_text, result_json, model_name,"
                    " input_tokens, output_tokens, cost_usd, via_text, truncated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                ),
                otherwise=None,
            )
        except sqlite3.DatabaseError as exc:
            if _trouble(exc) == "read-only":  # the folder was made read-only during the run
                self._become_read_only()
                return
            if _trouble(exc) in ("full", "io"):
                raise _storage_error(self.path, exc) from None
            raise

    def __len__(self) -> int:
        return self._use(
            lambda db: int(db.execute("SELECT count(*) FROM replies").fetchone()[0]), otherwise=0
        )

    def clear(self) -> int:
        """Delete every reply; return how many there were."""
        return self._use(lambda db: int(db.execute("DELETE FROM replies").rowcount), otherwise=0)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):  # a damaged file may fail to checkpoint
                    self._db.close()
                self._db = None

    def _use(self, action: Callable[[sqlite3.Connection], T], *, otherwise: T) -> T:
        """*action* on the open file; on damage, again on the fresh file that replaces it."""
        with self._lock:
            if self._db is None:
                return otherwise
            try:
                return action(self._db)
            except sqlite3.DatabaseError as exc:
                if _trouble(exc) != "corrupt":
                    raise
                moved = self._set_aside(exc)
            if moved:
                self._connect()
            return otherwise if self._db is None else action(self._db)

    def _connect(self) -> None:
        """Open the file read-write if this process may write it, else read-only."""
        self._inode = _inode(self.path)
        if _may_write(self.path):
            try:
                self._db = _connect_writable(self.path)
                self._inode = _inode(self.path)
                return
            except sqlite3.OperationalError as exc:
                if _trouble(exc) not in ("read-only", "cannot-open"):
                    raise
        self.read_only = True
        if not self.path.exists():
            _log.warning(
                "cache %s cannot be created (its folder is read-only): replies are not stored",
                self.path,
            )
            return
        self._db = _connect_read_only(self.path)
        _log.warning(
            "cache %s is read-only: replies are read from it, new ones are not stored", self.path
        )

    def _become_read_only(self) -> None:
        self.read_only = True
        _log.warning(
            "cache %s became read-only: replies are read from it, new ones are not stored",
            self.path,
        )

    def _set_aside(self, exc: sqlite3.DatabaseError) -> bool:
        """Move the damaged file (and its WAL) aside and say where; False if it cannot move."""
        self.close()
        if self._inode is not None and _inode(self.path) != self._inode:
            return True  # another process moved it already: the file there now is sound
        target = _aside_name(self.path)
        try:
            # The WAL first, so no other process pairs the damaged file's WAL with a fresh file.
            for suffix in ("-wal", "-shm", ""):
                source = self.path.with_name(self.path.name + suffix)
                if suffix == "" or source.exists():
                    source.replace(target.with_name(target.name + suffix))
        except FileNotFoundError:
            return True  # another process moved it meanwhile
        except OSError as err:
            self.read_only = True
            _log.warning(
                "cache %s is corrupt (%s) and cannot be moved aside (%s): replies are not cached;"
                " delete it to start a fresh one",
                self.path, exc, err.strerror or err,
            )  # fmt: skip
            return False
        _log.warning(
            "cache %s is corrupt (%s): moved it to %s and started a fresh one",
            self.path, exc, target,
        )  # fmt: skip
        return True


_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, raw_text TEXT,"
    " result_json TEXT NOT NULL, model_name TEXT NOT NULL, input_tokens INTEGER,"
    " output_tokens INTEGER, cost_usd REAL, via_text INTEGER NOT NULL,"
    " truncated INTEGER NOT NULL,"
    " created REAL DEFAULT (julianday('now')))"
)


def _connect_writable(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    try:
        _use_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_CREATE_TABLE)
        _check(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _use_wal(db: sqlite3.Connection, patience_s: float = 30.0) -> None:
    """Switch the file to WAL mode, waiting for another process that opens it too.

    SQLite answers "database is locked" at once, without its busy timeout, when two
    connections change the journal mode of a new file together; so wait here.
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _connect_read_only(path: Path) -> sqlite3.Connection | None:
    """Open for reading only; None if the file holds no replies table.

    Reading a WAL file needs its ``-shm`` index, which a read-only folder may lack: then
    the file is opened as immutable, as nothing can change it there.
    """
    uri = path.resolve().as_uri()
    try:
        db = _connect_uri(f"{uri}?mode=ro", path)
    except sqlite3.OperationalError as exc:
        if _trouble(exc) != "cannot-open":
            raise
        db = _connect_uri(f"{uri}?immutable=1", path)
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'replies'").fetchone() is None:
        db.close()
        return None
    return db


def _connect_uri(uri: str, path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False, isolation_level=None)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opening is lazy: read
        _check(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _check(db: sqlite3.Connection, path: Path) -> None:
    """Raise SQLite's own corruption error when a small file fails its quick check."""
    if path.stat().st_size > CHECKED_AT_OPEN_MAX_BYTES:
        return
    if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
        message = "database disk image is malformed"  # the verdict itself spans lines
        raise sqlite3.DatabaseError(message)


Trouble = Literal["corrupt", "read-only", "cannot-open", "full", "io"]

_TROUBLE_BY_CODE: dict[int, Trouble] = {
    11: "corrupt",  # SQLITE_CORRUPT
    26: "corrupt",  # SQLITE_NOTADB
    8: "read-only",  # SQLITE_READONLY
    14: "cannot-open",  # SQLITE_CANTOPEN
    13: "full",  # SQLITE_FULL
    10: "io",  # SQLITE_IOERR: EFBIG past the file size limit lands here
}
# Python 3.10 has no code on the exception; its message is SQLite's text for the code.
_TROUBLE_BY_TEXT: dict[str, Trouble] = {
    "database disk image is malformed": "corrupt",
    "file is not a database": "corrupt",
    "could not decode to utf-8": "corrupt",  # bytes overwritten inside a stored text
    "attempt to write a readonly database": "read-only",
    "unable to open database file": "cannot-open",
    "database or disk is full": "full",
    "disk i/o error": "io",
}


def _trouble(exc: sqlite3.Error) -> Trouble | None:
    """What an SQLite error means for the cache, if it is one the cache handles."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return _TROUBLE_BY_CODE.get(code & 0xFF)  # the primary code, without the extension
    text = str(exc).lower()
    return next((kind for start, kind in _TROUBLE_BY_TEXT.items() if text.startswith(start)), None)


def _storage_error(path: Path, exc: sqlite3.Error) -> StorageFullError:
    """The one-line error for a write the disk refused, naming the likely cause."""
    if _trouble(exc) == "full" or shutil.disk_usage(path.parent).free < 2**20:
        message = (
            f"no space left on device writing the cache at {path}; "
            "free space and run again to resume"
        )
    elif _past_file_size_limit(path):
        message = (
            f"the cache at {path} reached the file size limit (ulimit -f); "
            "raise the limit and run again to resume"
        )
    else:
        message = (
            f"could not write the cache at {path} ({exc}); check the disk and run again to resume"
        )
    return StorageFullError(message, path=path)


def _past_file_size_limit(path: Path) -> bool:
    """Whether the cache file or its WAL is within a MiB of this process's file size limit."""
    try:
        import resource
    except ImportError:  # not on Windows
        return False
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return False
    files = [path.with_name(path.name + suffix) for suffix in ("", "-wal")]
    largest = max((f.stat().st_size for f in files if f.exists()), default=0)
    return largest + 2**20 >= limit


def _may_write(path: Path) -> bool:
    """Whether this process may create or change *path*; WAL also writes in its folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    if not os.access(path.parent, os.W_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def _aside_name(path: Path) -> Path:
    """A free name beside *path* that says the file is damaged and since when."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
        number += 1
    return target


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
