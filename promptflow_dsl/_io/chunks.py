"""Large inputs in bounded memory: read chunk by chunk, write each finished chunk at once.

Finished chunks are written as part files next to the output, with a manifest naming the
input, the recipe and the chunk size. A run that is stopped (even killed) and started
again skips the parts already on disk, then the parts are joined into the output file.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from .frames import check_format, read_frame, write_frame

__all__ = ["PartWriter", "count_rows", "iter_chunks"]


def iter_chunks(path: Path, size: int, *, limit: int | None = None) -> Iterator[pl.DataFrame]:
    """The input's rows, *size* at a time (JSON arrays are read whole)."""
    suffix = check_format(path)
    remaining = limit if limit is not None else float("inf")
    if suffix in (".jsonl", ".ndjson"):
        with path.open("rb") as handle:
            lines: list[bytes] = []
            for line in handle:
                if line.strip() and remaining > 0:
                    lines.append(line)
                    remaining -= 1
                if len(lines) == size or (remaining == 0 and lines):
                    yield pl.read_ndjson(io.BytesIO(b"".join(lines)))
                    lines = []
                if remaining == 0:
                    return
            if lines:
                yield pl.read_ndjson(io.BytesIO(b"".join(lines)))
        return
    if suffix == ".parquet":
        scan = pl.scan_parquet(path)
        if limit is not None:
            scan = scan.head(limit)
        offset = 0
        while (chunk := scan.slice(offset, size).collect()).height:
            yield chunk
            offset += size
        return
    frame = read_frame(path, limit=limit)
    for offset in range(0, frame.height, size):
        yield frame.slice(offset, size)


class PartWriter:
    """Part files for one output; resumable when the manifest matches."""

    def __init__(self, output: Path, manifest: dict[str, object]) -> None:
        self.output = output
        self.folder = output.with_name(output.name + ".parts")
        self.manifest = manifest
        fingerprint = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
        stamp = self.folder / "manifest.json"
        if self.folder.exists():
            known = json.loads(stamp.read_text()).get("fingerprint") if stamp.exists() else None
            if known != fingerprint:  # another input, recipe or chunk size: start over
                shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp.write_text(
            json.dumps({"fingerprint": fingerprint, **manifest}, indent=1, default=str)
        )

    def _part(self, index: int) -> Path:
        return self.folder / f"part-{index:06d}.parquet"

    def done(self, index: int) -> bool:
        """True if chunk *index* was finished by this or an earlier run."""
        return self._part(index).exists()

    def write(self, index: int, frame: pl.DataFrame) -> None:
        """Store a finished chunk (atomically: a killed run never leaves half a part)."""
        partial = self.folder / f".part-{index:06d}.tmp"
        frame.write_parquet(partial)
        partial.replace(self._part(index))

    def first_error(self) -> dict[str, object] | None:
        """The first recorded row error in the finished parts, if any (to tell the user why)."""
        for part in sorted(self.folder.glob("part-*.parquet")):
            if "error" in pl.read_parquet_schema(part):
                errors = pl.scan_parquet(part).select("error").drop_nulls().head(1).collect()
                if errors.height:
                    return dict(errors["error"][0])
        return None

    def finish(self) -> tuple[int, int]:
        """Join the parts into the output file and remove them; return (rows, failed rows)."""
        parts = sorted(self.folder.glob("part-*.parquet"))
        if not parts:
            write_frame(pl.DataFrame(), self.output)
            shutil.rmtree(self.folder)
            return 0, 0
        schemas = {tuple(pl.read_parquet_schema(p).items()) for p in parts}
        if len(schemas) == 1 and self.output.suffix.lower() in (".parquet", ".jsonl", ".ndjson"):
            joined = pl.scan_parquet(parts)  # streamed: memory stays bounded
            if self.output.suffix.lower() == ".parquet":
                joined.sink_parquet(self.output)
            else:
                joined.sink_ndjson(self.output)
        else:  # parts that disagree on a dtype (an all-null input column), or CSV/JSON
            frames = [pl.read_parquet(p) for p in parts]
            write_frame(pl.concat(frames, how="diagonal_relaxed"), self.output)
        counts = pl.scan_parquet(parts[0]).collect_schema()
        failed = pl.col("error").is_not_null().sum() if "error" in counts else pl.lit(0)
        rows, failures = (
            pl.concat([pl.scan_parquet(p).select(pl.len(), failed) for p in parts])
            .sum()
            .collect()
            .row(0)
        )
        shutil.rmtree(self.folder)
        return int(rows), int(failures)


def count_rows(path: Path, *, limit: int | None = None) -> int:
    """The number of input rows (lines for JSONL; read for the other formats)."""
    suffix = check_format(path)
    if suffix == ".parquet":
        rows = int(pl.scan_parquet(path).select(pl.len()).collect().item())
    elif suffix in (".jsonl", ".ndjson"):
        with path.open("rb") as handle:
            rows = sum(1 for line in handle if line.strip())
    else:
        rows = read_frame(path).height
    return min(rows, limit) if limit is not None else rows
