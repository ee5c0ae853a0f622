"""Large inputs in bounded memory: read chunk by chunk (each finished chunk is written as a
part file by :mod:`.parts`, so a stopped run resumes)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from .frames import check_format, read_frame, reading

__all__ = ["count_rows", "iter_chunks"]


def iter_chunks(path: Path, size: int, *, limit: int | None = None) -> Iterator[pl.DataFrame]:
    """The input's rows, *size* at a time (JSON arrays are read whole)."""
    with reading(path):
        yield from _chunks(path, size, limit)


def _chunks(path: Path, size: int, limit: int | None) -> Iterator[pl.DataFrame]:
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


def count_rows(path: Path, *, limit: int | None = None) -> int:
    """The number of input rows (lines for JSONL; read for the other formats)."""
    with reading(path):
        return _count(path, limit)


def _count(path: Path, limit: int | None) -> int:
    suffix = check_format(path)
    if suffix == ".parquet":
        rows = int(pl.scan_parquet(path).select(pl.len()).collect().item())
    elif suffix in (".jsonl", ".ndjson"):
        with path.open("rb") as handle:
            rows = sum(1 for line in handle if line.strip())
    else:
        rows = read_frame(path).height
    return min(rows, limit) if limit is not None else rows
