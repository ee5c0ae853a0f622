"""The parts of an output being written: finished chunks, the spend ledger, the manifest.

Finished chunks are written as part files in ``OUTPUT.parts/``, with a manifest naming
the input, the recipe and the chunk size. A run that is stopped (even killed) and started
again with the same manifest skips the parts already on disk, then the parts are joined
into the output, which replaces any earlier file at that path all at once.

The batch ledger (``batches.sqlite``) names the provider batches that runs of this output
submitted, so a run started again waits for them instead of submitting them again.

Each part carries the prompts its chunk numbered (in its Parquet footer), so a resumed run
numbers the samples of later chunks exactly as an uninterrupted run would. The ledger
(``spend.jsonl``) counts every HTTP attempt and cache hit as it happens, so the output's
totals and the budget include calls made for chunks that were interrupted before they
were written, by this run or an earlier one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import polars as pl

from .._errors import StorageError
from .atomic import replacing
from .frames import json_text, write_frame

__all__ = ["BATCH_LEDGER", "PartWriter"]

_NUMBERED_KEY = "promptflow_dsl.numbered"
BATCH_LEDGER = "batches.sqlite"


def _batches_running(ledger: Path) -> bool:
    """True if the batch ledger at *ledger* names a batch not yet collected."""
    if not ledger.exists():
        return False
    from .._engine._batch import BatchLedger

    book = BatchLedger(ledger)
    try:
        return bool(book.batches(running_only=True))
    finally:
        book.close()


def _clear_but_batches(folder: Path) -> None:
    """Remove a parts folder's contents, except its batch ledger."""
    for entry in folder.iterdir():
        if entry.name.startswith(BATCH_LEDGER):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


class PartWriter:
    """Part files for one output; resumable when the manifest matches.

    The caller holds the output's lock (:class:`~.lock.OutputLock`) while it writes.
    """

    def __init__(self, output: Path, manifest: dict[str, object]) -> None:
        self.output = output
        self.folder = output.with_name(output.name + ".parts")
        self.manifest = manifest
        encoded = json.dumps(manifest, sort_keys=True, default=str).encode()
        fingerprint = hashlib.sha256(encoded).hexdigest()
        stamp = self.folder / "manifest.json"
        self.resumed = self.restarted = False
        if self.folder.exists():
            known = json.loads(stamp.read_text()).get("fingerprint") if stamp.exists() else None
            if known != fingerprint:  # another input, recipe or chunk size: start over
                _clear_but_batches(self.folder)
                self.restarted = True
            else:
                self.resumed = True
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp.write_text(
            json.dumps({"fingerprint": fingerprint, **manifest}, indent=1, default=str)
        )
        self._ledger: IO[bytes] | None = None

    @property
    def batches(self) -> Path:
        """The output's batch ledger: the provider batches its runs submitted.

        It outlives a restart (another recipe or chunk size): a batch may still be running,
        and is paid for, whatever the parts on disk.
        """
        return self.folder / BATCH_LEDGER

    def _part(self, index: int) -> Path:
        return self.folder / f"part-{index:06d}.parquet"

    def _parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet"))

    def finished(self) -> int:
        """How many chunks are finished."""
        return len(self._parts())

    def done(self, index: int) -> bool:
        """True if chunk *index* was finished by this or an earlier run."""
        return self._part(index).exists()

    def taken_samples(self) -> list[tuple[str, int] | str]:
        """The (prompt, sample) pairs that the finished chunks numbered (for a resume)."""
        taken: list[tuple[str, int] | str] = []
        for part in self._parts():
            metadata = pl.read_parquet_metadata(part)
            entries = json.loads(metadata.get(_NUMBERED_KEY, "[]"))
            taken.extend(e if isinstance(e, str) else (e[0], int(e[1])) for e in entries)
        return taken

    @contextlib.contextmanager
    def _writing(self, what: Path) -> Iterator[None]:
        """Turn a refused write into one line that says what is kept and how to go on."""
        try:
            yield
        except OSError as exc:
            reason = exc.strerror or str(exc)
            message = (
                f"could not write {what}: {reason}. The finished parts are kept in "
                f"{self.folder}: make room and run the same command again to resume"
            )
            raise StorageError(message) from exc

    def write(self, index: int, frame: pl.DataFrame, numbered: list[tuple[str, int]]) -> None:
        """Store a finished chunk with the (prompt, sample) pairs it numbered (atomically: a
        killed run never leaves half a part)."""
        with self._writing(self._part(index)), replacing(self._part(index)) as partial:
            frame.write_parquet(partial, metadata={_NUMBERED_KEY: json.dumps(numbered)})

    def record_spend(self, entry: dict[str, float]) -> None:
        """Append one spend entry (an attempt, its usage, a cache hit) to the ledger."""
        ledger = self.folder / "spend.jsonl"
        with self._writing(ledger):
            if self._ledger is None:
                # Unbuffered: each entry reaches the operating system at once, so a killed
                # process loses none of them.
                self._ledger = ledger.open("ab", buffering=0)
            self._ledger.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")

    def spent(self) -> dict[str, float]:
        """The calls, cache hits, tokens and dollars recorded for this output, by any run."""
        totals: dict[str, float] = {}
        ledger = self.folder / "spend.jsonl"
        if not ledger.exists():
            return totals
        with ledger.open("rb") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:  # a line cut short by a kill or a full disk
                    continue
                for key, value in entry.items():
                    totals[key] = totals.get(key, 0) + value
        return totals

    def first_error(self) -> dict[str, object] | None:
        """The first recorded row error in the finished parts, if any (to tell the user why)."""
        for part in self._parts():
            if "error" in pl.read_parquet_schema(part):
                errors = pl.scan_parquet(part).select("error").drop_nulls().head(1).collect()
                if errors.height:
                    return dict(errors["error"][0])
        return None

    def counts(self) -> tuple[int, int]:
        """Rows and failed rows in the finished parts."""
        parts = self._parts()
        if not parts:
            return 0, 0
        failed = [
            pl.col("error").is_not_null().sum()
            if "error" in pl.read_parquet_schema(p)
            else pl.lit(0)
            for p in parts
        ]
        totals = pl.concat(
            [pl.scan_parquet(p).select(pl.len().cast(pl.Int64), f.cast(pl.Int64).alias("failed"))
             for p, f in zip(parts, failed, strict=True)]
        ).sum().collect().row(0)  # fmt: skip
        return int(totals[0]), int(totals[1])

    def finish(self, metadata: dict[str, str] | None = None) -> None:
        """Join the parts into the output (*metadata* in a Parquet footer); remove them.

        The output replaces an earlier file at its path only once it is complete. A batch
        ledger that still names a running batch stays (a later run collects it).
        """
        self.close()
        with self._writing(self.output):
            self._join(self._parts(), metadata)
        if _batches_running(self.batches):
            _clear_but_batches(self.folder)
        else:
            shutil.rmtree(self.folder)

    def _join(self, parts: list[Path], metadata: dict[str, str] | None) -> None:
        schemas = {tuple(pl.read_parquet_schema(p).items()) for p in parts}
        suffix = self.output.suffix.lower()
        if parts and len(schemas) == 1 and suffix in (".parquet", ".jsonl", ".ndjson"):
            joined = pl.scan_parquet(parts)  # streamed: memory stays bounded
            self.output.parent.mkdir(parents=True, exist_ok=True)
            with replacing(self.output) as partial:
                if suffix == ".parquet":
                    joined.sink_parquet(partial, metadata=metadata)
                else:
                    joined.sink_ndjson(partial)
        else:  # no rows, parts that disagree on a dtype (an all-null input column), CSV, JSON
            frames = [pl.read_parquet(p) for p in parts]
            write_frame(_concat(frames), self.output, metadata=metadata)

    def close(self) -> None:
        """Close the ledger (the parts stay for a later run)."""
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """The parts stacked; a column whose types no cast reconciles (a list in one chunk,
    text in another) is written as text, JSON for the nested values."""
    if not frames:
        return pl.DataFrame()
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except (pl.exceptions.SchemaError, pl.exceptions.InvalidOperationError):
        kinds: dict[str, set[pl.DataType]] = {}
        for frame in frames:
            for name, dtype in frame.schema.items():
                kinds.setdefault(name, set()).add(dtype)
        mixed = {name for name, dtypes in kinds.items() if len(dtypes) > 1}
        return pl.concat([_as_text(f, mixed) for f in frames], how="diagonal_relaxed")


def _as_text(frame: pl.DataFrame, columns: set[str]) -> pl.DataFrame:
    nested = [c for c in columns if c in frame.columns and frame.schema[c].is_nested()]
    flat = [c for c in columns if c in frame.columns and c not in nested]
    return frame.with_columns(
        *[pl.col(c).cast(pl.String) for c in flat],
        *[pl.col(c).map_elements(json_text, return_dtype=pl.String) for c in nested],
    )
