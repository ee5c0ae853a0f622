"""Read and write frames by file extension: .jsonl/.ndjson, .json, .csv and .parquet.

A path without an extension (or an existing folder) is a Hugging Face ``datasets`` folder,
as ``Dataset.save_to_disk`` writes it (the ``hf`` extra). A text file that holds only white
space reads as a frame with no rows and no columns, the way an empty ``.jsonl`` always did.

>>> import polars as pl, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.jsonl"
>>> write_frame(pl.DataFrame({"a": [1, 2]}), path)
>>> read_frame(path).to_dicts()
[{'a': 1}, {'a': 2}]
"""

from __future__ import annotations

import codecs
import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from .._errors import InputFileError, PromptflowError
from .._recipe._step import BOOKKEEPING_COLUMNS
from .atomic import replacing

__all__ = [
    "DATASET_FOLDER",
    "FORMATS",
    "check_format",
    "check_output",
    "read_frame",
    "reading",
    "write_frame",
]

FORMATS = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
_TEXT_FORMATS = (".jsonl", ".ndjson", ".json", ".csv")
_BLOCK = 1 << 16
DATASET_FOLDER = "datasets folder"


def check_format(path: Path) -> str:
    """The file's format (its lower-case suffix, or a datasets folder); else a clear error."""
    suffix = path.suffix.lower()
    if path.is_dir() or not suffix:
        return DATASET_FOLDER
    if suffix not in FORMATS:
        message = (
            f"{path}: unknown file type {suffix!r}; use one of {', '.join(FORMATS)}, "
            "or a name without extension for a datasets folder"
        )
        raise PromptflowError(message)
    return suffix


def check_output(path: Path) -> str:
    """The output's format; an existing folder must be a datasets folder (or empty).

    A run never writes its rows into a folder that holds something else, such as a project.
    """
    suffix = check_format(path)
    if suffix != DATASET_FOLDER:
        return suffix
    from .hf import require_datasets

    require_datasets()  # before the run, not after it has been paid for
    markers = ("state.json", "dataset_dict.json")
    if path.is_dir() and any(path.iterdir()) and not any((path / m).exists() for m in markers):
        message = (
            f"{path} is a folder that holds other files, not a datasets folder; "
            "name a new folder, or a file with an extension (.parquet, .jsonl, ...)"
        )
        raise PromptflowError(message)
    return suffix


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn a file that cannot be parsed into one clear error that names it."""
    try:
        yield
    except pl.exceptions.PolarsError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"could not read {path} as {path.suffix or 'JSON Lines'}: {reason}"
        raise InputFileError(message, path=str(path)) from None


def read_frame(path: str | Path, *, limit: int | None = None) -> pl.DataFrame:
    """Read a data file into a frame, the first *limit* rows if given."""
    path = Path(path)
    suffix = check_format(path)
    if not path.exists():
        message = f"input file {path} does not exist"
        raise InputFileError(message, path=str(path))
    with reading(path):
        if suffix == DATASET_FOLDER:
            from .hf import load_folder

            frame = load_folder(path)
        elif suffix in _TEXT_FORMATS and _is_blank(path):
            frame = pl.DataFrame()  # no rows, as in an empty Parquet file: not an error
        elif suffix in (".jsonl", ".ndjson"):
            frame = pl.read_ndjson(_without_bom(path), n_rows=limit)
        elif suffix == ".json":
            frame = pl.read_json(_without_bom(path))
        elif suffix == ".csv":
            # A bookkeeping column is text in CSV: "0" as a model name must stay "0".
            text = dict.fromkeys(BOOKKEEPING_COLUMNS, pl.String)
            frame = pl.read_csv(_without_bom(path), n_rows=limit, schema_overrides=text)
        else:
            frame = pl.read_parquet(path, n_rows=limit)
    return frame.head(limit) if limit is not None else frame


def _is_blank(path: Path) -> bool:
    """True if a text file holds nothing but white space (and perhaps a byte order mark).

    Reads only until the first other byte, so a large file costs one block.
    """
    with path.open("rb") as handle:
        first = handle.read(_BLOCK).removeprefix(codecs.BOM_UTF8)
        rest = iter(lambda: handle.read(_BLOCK), b"")
        return not any(block.strip() for block in itertools.chain([first], rest))


def _without_bom(path: Path) -> Path | io.BytesIO:
    """The file, or its bytes after a UTF-8 byte order mark (editors on Windows write one)."""
    with path.open("rb") as handle:
        if handle.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
            return path
        return io.BytesIO(handle.read())


def write_frame(
    frame: pl.DataFrame, path: str | Path, *, metadata: dict[str, str] | None = None
) -> None:
    """Write a frame to a data file, creating its folder if needed, all at once.

    *metadata* (key-value strings) goes into a Parquet file's footer. A datasets folder is
    written beside and then swapped in, so it is replaced whole.
    """
    path = Path(path)
    suffix = check_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == DATASET_FOLDER:
        from .hf import save_folder

        save_folder(frame, path)
        return
    with replacing(path) as partial:  # a failed write never destroys an earlier good file
        if suffix in (".jsonl", ".ndjson"):
            frame.write_ndjson(partial)
        elif suffix == ".json":
            frame.write_json(partial)
        elif suffix == ".csv":
            frame.with_columns(_flatten_for_csv(frame)).write_csv(partial)
        else:
            frame.write_parquet(partial, metadata=metadata)


def _flatten_for_csv(frame: pl.DataFrame) -> list[pl.Expr]:
    """CSV has no nested types: lists and structs are written as JSON text."""
    nested = [c for c, t in frame.schema.items() if isinstance(t, (pl.List, pl.Struct))]
    return [pl.col(c).map_elements(json_text, return_dtype=pl.String) for c in nested]


def json_text(value: object) -> str:
    """A cell's value as JSON text (CSV has no nested types)."""
    import json

    return json.dumps(value.to_list() if isinstance(value, pl.Series) else value)
