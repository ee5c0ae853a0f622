"""Large inputs in bounded memory: read chunk by chunk, write each finished chunk at once.

Finished chunks are written as part files next to the output, with a manifest naming the
input, the recipe and the chunk size. A run that is stopped (even killed) and started
again skips the parts already on disk, then the parts are joined into the output file.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import itertools
import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl

from .._errors import InputFileError
from .frames import check_format, read_frame, reading, write_frame

__all__ = ["PartWriter", "count_rows", "iter_chunks"]

_CHECK_BLOCK = 1_000  # lines checked by one Polars call; only a failing block is re-read
_ANY_OBJECT = {"\x00": pl.Null}  # a schema that reads no field: the parse alone is checked

Line = tuple[int, bytes]
"""A non-blank line of a JSON Lines file and its 1-based number in the file."""


def iter_chunks(path: Path, size: int, *, limit: int | None = None) -> Iterator[pl.DataFrame]:
    """The input's rows, *size* at a time (JSON arrays are read whole).

    JSON Lines are checked whole before the first chunk, so a broken line fails the run
    before any call, with its line number.
    """
    with reading(path):
        yield from _chunks(path, size, limit)


def _chunks(path: Path, size: int, limit: int | None) -> Iterator[pl.DataFrame]:
    suffix = check_format(path)
    if suffix in (".jsonl", ".ndjson"):
        _check_lines(path, limit)
        for block in _blocks(_lines(path, limit), size):
            yield _read_block(path, block)
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

    def write(self, index: int, frame: pl.DataFrame, usage: dict[str, float] | None = None) -> None:
        """Store a finished chunk (atomically: a killed run never leaves half a part).

        *usage* (calls, tokens, dollars spent on the chunk) is kept beside it, so the
        output's totals include chunks that an earlier, interrupted run made.
        """
        if usage is not None:
            spent = self.folder / f"usage-{index:06d}.json"
            spent.with_suffix(".tmp").write_text(json.dumps(usage))
            spent.with_suffix(".tmp").replace(spent)
        partial = self.folder / f".part-{index:06d}.tmp"
        frame.write_parquet(partial)
        partial.replace(self._part(index))

    def usage(self) -> dict[str, float]:
        """The calls, tokens and dollars spent on the finished chunks, by any run."""
        totals: dict[str, float] = {}
        for path in sorted(self.folder.glob("usage-*.json")):
            if self._part(int(path.stem.split("-")[1])).exists():
                for key, value in json.loads(path.read_text()).items():
                    totals[key] = totals.get(key, 0) + value
        return totals

    def first_error(self) -> dict[str, object] | None:
        """The first recorded row error in the finished parts, if any (to tell the user why)."""
        for part in sorted(self.folder.glob("part-*.parquet")):
            if "error" in pl.read_parquet_schema(part):
                errors = pl.scan_parquet(part).select("error").drop_nulls().head(1).collect()
                if errors.height:
                    return dict(errors["error"][0])
        return None

    def counts(self) -> tuple[int, int]:
        """Rows and failed rows in the finished parts."""
        parts = sorted(self.folder.glob("part-*.parquet"))
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
        """Join the parts into the output file (*metadata* in a Parquet footer); remove them."""
        parts = sorted(self.folder.glob("part-*.parquet"))
        schemas = {tuple(pl.read_parquet_schema(p).items()) for p in parts}
        suffix = self.output.suffix.lower()
        if parts and len(schemas) == 1 and suffix in (".parquet", ".jsonl", ".ndjson"):
            joined = pl.scan_parquet(parts)  # streamed: memory stays bounded
            if suffix == ".parquet":
                joined.sink_parquet(self.output, metadata=metadata)
            else:
                joined.sink_ndjson(self.output)
        else:  # no rows, parts that disagree on a dtype (an all-null input column), CSV, JSON
            frames = [pl.read_parquet(p) for p in parts]
            joined_frame = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
            write_frame(joined_frame, self.output, metadata=metadata)
        shutil.rmtree(self.folder)


def count_rows(path: Path, *, limit: int | None = None) -> int:
    """The number of input rows (JSON Lines are counted and checked: a broken line fails)."""
    with reading(path):
        return _count(path, limit)


def _count(path: Path, limit: int | None) -> int:
    suffix = check_format(path)
    if suffix == ".parquet":
        rows = int(pl.scan_parquet(path).select(pl.len()).collect().item())
    elif suffix in (".jsonl", ".ndjson"):
        rows = _check_lines(path, limit)
    else:
        rows = read_frame(path).height
    return min(rows, limit) if limit is not None else rows


def _lines(path: Path, limit: int | None) -> Iterator[Line]:
    """The first *limit* non-blank lines of a JSON Lines file, numbered, without a BOM."""
    with path.open("rb") as handle:
        numbered = enumerate(handle, start=1)
        lines = (
            (number, line.removeprefix(codecs.BOM_UTF8) if number == 1 else line)
            for number, line in numbered
        )
        yield from itertools.islice(((n, line) for n, line in lines if line.strip()), limit)


def _blocks(lines: Iterable[Line], size: int) -> Iterator[list[Line]]:
    iterator = iter(lines)
    while block := list(itertools.islice(iterator, size)):
        yield block


def _joined(block: list[Line]) -> io.BytesIO:
    # Only a file's last line may lack its newline, so joined lines stay one per row.
    return io.BytesIO(b"".join(line for _, line in block))


def _read_block(path: Path, block: list[Line]) -> pl.DataFrame:
    """One chunk's rows; a failure (columns whose types conflict) names its lines."""
    try:
        return pl.read_ndjson(_joined(block))
    except pl.exceptions.PolarsError as exc:
        where = f"lines {block[0][0]}-{block[-1][0]}"
        message = f"could not read {path}, {where}: {_first_line(exc)}; give each column one type"
        raise InputFileError(message, path=str(path)) from None


def _check_lines(path: Path, limit: int | None) -> int:
    """Count the rows of a JSON Lines file, checking that each line is a JSON object.

    Polars checks a block at a time; only a block that fails is read line by line, to
    name the first broken line.
    """
    rows = 0
    for block in _blocks(_lines(path, limit), _CHECK_BLOCK):
        try:
            pl.read_ndjson(_joined(block), schema=_ANY_OBJECT)
        except pl.exceptions.PolarsError as exc:
            _name_broken_line(path, block)
            message = f"could not read {path}: {_first_line(exc)}"
            raise InputFileError(message, path=str(path)) from None
        rows += len(block)
    return rows


def _name_broken_line(path: Path, block: list[Line]) -> None:
    """Raise an :class:`InputFileError` for the first line of *block* that does not parse."""
    for number, line in block:
        try:
            pl.read_ndjson(io.BytesIO(line), schema=_ANY_OBJECT)
        except pl.exceptions.PolarsError as exc:
            message = f"could not read {path}, line {number}: {_why(line, exc)}; fix or remove it"
            raise InputFileError(message, path=str(path), line=number) from None


_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _why(line: bytes, exc: Exception) -> str:
    """What is wrong with a line, in the json module's words (Polars gives a byte offset)."""
    try:
        value = json.loads(line, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        return "it is not UTF-8 text"
    except json.JSONDecodeError as error:
        return f"{error.msg} at column {error.colno}"
    except ValueError as error:
        return str(error)
    if not isinstance(value, dict):
        return f"expected a JSON object, got {_JSON_KINDS.get(type(value), 'a number')}"
    return _first_line(exc)


def _refuse_constant(name: str) -> object:
    message = f"{name} is not valid JSON"
    raise ValueError(message)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
