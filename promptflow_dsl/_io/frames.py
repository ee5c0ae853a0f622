"""Read and write frames by file extension: .jsonl/.ndjson, .json, .csv and .parquet.

A path without an extension (or an existing folder) is a Hugging Face ``datasets`` folder,
as ``Dataset.save_to_disk`` writes it (the ``hf`` extra).

>>> import polars as pl, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.jsonl"
>>> write_frame(pl.DataFrame({"a": [1, 2]}), path)
>>> read_frame(path).to_dicts()
[{'a': 1}, {'a': 2}]
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from .._errors import PromptflowError

__all__ = ["DATASET_FOLDER", "FORMATS", "check_format", "read_frame", "write_frame"]

FORMATS = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
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


def read_frame(path: str | Path, *, limit: int | None = None) -> pl.DataFrame:
    """Read a data file into a frame, the first *limit* rows if given."""
    path = Path(path)
    suffix = check_format(path)
    if not path.exists():
        message = f"input file {path} does not exist"
        raise PromptflowError(message)
    if suffix == DATASET_FOLDER:
        from .hf import load_folder

        frame = load_folder(path)
    elif suffix in (".jsonl", ".ndjson"):
        frame = pl.read_ndjson(path, n_rows=limit)
    elif suffix == ".json":
        frame = pl.read_json(path)
    elif suffix == ".csv":
        frame = pl.read_csv(path, n_rows=limit)
    else:
        frame = pl.read_parquet(path, n_rows=limit)
    return frame.head(limit) if limit is not None else frame


def write_frame(
    frame: pl.DataFrame, path: str | Path, *, metadata: dict[str, str] | None = None
) -> None:
    """Write a frame to a data file, creating its folder if needed.

    *metadata* (key-value strings) goes into a Parquet file's footer. A datasets folder is
    replaced whole.
    """
    path = Path(path)
    suffix = check_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == DATASET_FOLDER:
        from .hf import save_folder

        save_folder(frame, path)
    elif suffix in (".jsonl", ".ndjson"):
        frame.write_ndjson(path)
    elif suffix == ".json":
        frame.write_json(path)
    elif suffix == ".csv":
        frame.with_columns(_flatten_for_csv(frame)).write_csv(path)
    else:
        frame.write_parquet(path, metadata=metadata)


def _flatten_for_csv(frame: pl.DataFrame) -> list[pl.Expr]:
    """CSV has no nested types: lists and structs are written as JSON text."""
    nested = [c for c, t in frame.schema.items() if isinstance(t, (pl.List, pl.Struct))]
    return [pl.col(c).map_elements(_json, return_dtype=pl.String) for c in nested]


def _json(value: object) -> str:
    import json

    return json.dumps(value.to_list() if isinstance(value, pl.Series) else value)
