"""Large inputs in bounded memory: read chunk by chunk (each finished chunk is written as a
part file by :mod:`.parts`, so a stopped run resumes)."""

from __future__ import annotations

import codecs
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl

from .._errors import InputFileError
from .frames import check_format, read_frame, reading

__all__ = ["count_rows", "iter_chunks"]

_CHECK_BLOCK = 1_000  # lines checked by one Polars call; only a failing block is re-read
_ANY_OBJECT = {"\x00": pl.Null}  # a schema that reads no field: the parse alone is checked

Line = tuple[int, bytes]
"""A non-blank line of a JSON Lines file and its 1-based number in the file."""


def iter_chunks(path: Path, size: int, *, limit: int | None = None) -> Iterator[pl.DataFrame]:
    """The input's rows, *size* at a time (JSON arrays are read whole).

    Call :func:`count_rows` first: it checks every JSON line, so a broken line fails the
    run before any call, with its line number (this reads the file once more, unchecked).
    """
    with reading(path):
        yield from _chunks(path, size, limit)


def _chunks(path: Path, size: int, limit: int | None) -> Iterator[pl.DataFrame]:
    suffix = check_format(path)
    if suffix in (".jsonl", ".ndjson"):
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
