"""BatchLedger: which batches a run submitted, and which requests each one carries.

A batch runs at the provider for up to a day, longer than a run may live. The ledger is a
small SQLite file written the moment a batch is submitted, so a run that is killed and
started again finds its batches and waits for them instead of paying twice. It holds ids,
model names and endpoints, never a key.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> ledger = BatchLedger(folder / "batches.sqlite")
>>> ledger.submitted(SubmittedBatch("batch_1", "openai", "gpt-4o-mini", None), ["a", "b"])
>>> ledger.latest_batch("b").id, ledger.latest_batch("c")
('batch_1', None)
>>> ledger.ended("batch_1", "completed")
>>> [(b.id, b.status) for b in ledger.batches()]
[('batch_1', 'completed')]
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..._errors import StorageError

__all__ = ["BatchLedger", "SubmittedBatch"]

_SCHEMA = """
create table if not exists batches (
    id text primary key, provider text not null, model text not null, api_base text,
    submitted_at real not null, requests integer not null, status text not null,
    stop_asked_at real
);
create table if not exists requests (
    custom_id text not null, batch_id text not null, collected_at real,
    primary key (custom_id, batch_id)
);
"""

_FIELDS = "b.id, b.provider, b.model, b.api_base, b.submitted_at, b.requests, b.status"
RUNNING = "running"
"""A batch's status in the ledger until its results are collected."""


@dataclass(frozen=True)
class SubmittedBatch:
    """One batch at a provider: where it is, and what the ledger last knew of it."""

    id: str
    provider: str
    model: str
    api_base: str | None
    submitted_at: float = 0.0
    requests: int = 0
    status: str = RUNNING


class BatchLedger:
    """The batches of one output (the CLI) or of one cache (the API), in a SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("pragma journal_mode=wal")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            message = f"cannot keep the batch ledger at {self.path}: {exc}"
            raise StorageError(message) from exc

    def __repr__(self) -> str:
        return f"BatchLedger({str(self.path)!r})"

    def submitted(self, batch: SubmittedBatch, custom_ids: Iterable[str]) -> None:
        """Note a batch the moment the provider accepted it, with every request it carries."""
        ids = list(custom_ids)
        with self._db:
            self._db.execute("begin")
            self._db.execute(
                "insert or replace into batches values (?, ?, ?, ?, ?, ?, ?, null)",
                (
                    batch.id,
                    batch.provider,
                    batch.model,
                    batch.api_base,
                    batch.submitted_at or time.time(),
                    len(ids),
                    RUNNING,
                ),
            )
            self._db.executemany(
                "insert or ignore into requests values (?, ?, null)", [(i, batch.id) for i in ids]
            )

    def collected(self, batch_id: str, custom_ids: Iterable[str]) -> set[str]:
        """Note that these answers of a batch are collected; returns those that an earlier
        run had collected (and counted) already."""
        ids, now = list(custom_ids), time.time()
        before: set[str] = set()
        with self._db:
            self._db.execute("begin")
            for start in range(0, len(ids), 500):  # under SQLite's limit of variables
                chunk = ids[start : start + 500]
                rows = self._db.execute(
                    "select custom_id from requests where batch_id = ? and collected_at is not "
                    f"null and custom_id in ({','.join('?' * len(chunk))})",
                    (batch_id, *chunk),
                )
                before.update(row[0] for row in rows)
            self._db.executemany(
                "update requests set collected_at = ? where batch_id = ? and custom_id = ?",
                [(now, batch_id, custom_id) for custom_id in ids],
            )
        return before

    def ended(self, batch_id: str, status: str) -> None:
        """Note that a batch ended (completed, expired, cancelled, failed)."""
        self._db.execute("update batches set status = ? where id = ?", (status, batch_id))

    def ask_to_stop(self, batch_id: str) -> None:
        """Note that the user cancelled the batch, so a run waiting for it does not send its
        requests again."""
        now = time.time()
        self._db.execute("update batches set stop_asked_at = ? where id = ?", (now, batch_id))

    def stop_asked_at(self, batch_id: str) -> float | None:
        """When the user cancelled the batch, if they did."""
        row = self._db.execute("select stop_asked_at from batches where id = ?", (batch_id,))
        found = row.fetchone()
        return found[0] if found else None

    def latest_batch(self, custom_id: str) -> SubmittedBatch | None:
        """The batch that most recently carried this request, if any did."""
        row = self._db.execute(
            f"select {_FIELDS} from requests r join batches b on b.id = r.batch_id "
            "where r.custom_id = ? order by b.submitted_at desc limit 1",
            (custom_id,),
        ).fetchone()
        return SubmittedBatch(*row) if row else None

    def batches(self, *, running_only: bool = False) -> list[SubmittedBatch]:
        """Every batch in the ledger (or only those not yet collected), oldest first."""
        where = f"where status = '{RUNNING}'" if running_only else ""
        rows = self._db.execute(f"select {_FIELDS} from batches b {where} order by submitted_at")
        return [SubmittedBatch(*row) for row in rows]

    def close(self) -> None:
        """Close the file (the ledger stays on disk)."""
        self._db.close()
