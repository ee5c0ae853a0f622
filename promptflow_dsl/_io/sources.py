"""Where a run reads its rows: a local file or folder, standard input (``-``), or the Hub.

Standard input and Hub inputs are copied once into a scratch folder, so the chunked reader,
the row count and resuming work on them as on any file. Resuming compares the input's
identity: a local file's size and modification time, or a copied input's SHA-256.

>>> import tempfile, pathlib
>>> scratch = pathlib.Path(tempfile.mkdtemp())
>>> (scratch / "rows.jsonl").write_text('{"a": 1}\\n')
9
>>> source = open_source(str(scratch / "rows.jsonl"), scratch)
>>> source.path.name, sorted(source.identity)
('rows.jsonl', ['input', 'input_bytes', 'input_mtime_ns'])
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import InputFileError
from .frames import check_format

__all__ = ["STDIO", "Source", "open_source"]

STDIO = "-"
"""The name of standard input and output on the command line (JSON Lines)."""


@dataclass(frozen=True)
class Source:
    """A readable local copy of the input and what identifies it for resuming."""

    path: Path
    identity: dict[str, Any]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copied(name: str, path: Path) -> Source:
    return Source(path, {"input": name, "input_sha256": _sha256(path)})


def open_source(name: str, scratch: Path) -> Source:
    """The input named on the command line, readable as a local file or folder."""
    if name == STDIO:
        path = scratch / "stdin.jsonl"
        with path.open("wb") as handle:
            shutil.copyfileobj(sys.stdin.buffer, handle)
        return _copied(name, path)
    if name.startswith("hf://"):
        return _hub(name, scratch)
    path = Path(name)
    check_format(path)
    if not path.exists():
        message = f"input file {path} does not exist"
        raise InputFileError(message, path=str(path))
    stamp = path / "state.json" if path.is_dir() else path
    stat = (stamp if stamp.exists() else path).stat()
    identity = {"input": str(path.resolve()), "input_bytes": stat.st_size}
    return Source(path, {**identity, "input_mtime_ns": stat.st_mtime_ns})


def _hub(url: str, scratch: Path) -> Source:
    from .hf import fetch_hub_file, hub_parts, load_hub_dataset

    if hub_parts(url)[1]:  # one data file of the repository
        path = fetch_hub_file(url, scratch)
        check_format(path)
        return _copied(url, path)
    path = scratch / "hub.parquet"
    load_hub_dataset(url).write_parquet(path)
    return _copied(url, path)
