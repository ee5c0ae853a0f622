"""``promptflow run RECIPE.py --engine ray``: sharded files in, sharded Parquet out.

The input is read by Ray Data: a Parquet file or folder of shards (or JSON Lines, JSON or
CSV), on a local disk or any filesystem that pyarrow reaches (``s3://``, ``gs://``...).
The output is a folder of Parquet shards, written as the workers finish, and its
provenance goes beside it in ``OUTPUT.meta.json`` (``promptflow show OUTPUT`` prints it),
written last: a folder without one is a run that did not finish. Running the same command
again rewrites the folder; every call that finished before comes from the cache.

An output is a folder that holds Parquet shards or nothing yet, never a project:

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> (folder / "notes.txt").write_text("mine")
4
>>> _output_folder(str(folder))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
promptflow_dsl._errors.EngineError: ... holds files that are not Parquet shards (notes.txt...)...
>>> _output_folder(str(folder / "out"))[0].endswith("/out")
True
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import EngineError, InputFileError
from .._io.provenance import build_provenance
from .._io.run_file import prepare
from .._recipe._recipe import RunSummary
from ._run import ClusterRun, refuse_on_ray, require_ray

if TYPE_CHECKING:
    import pyarrow.fs
    import ray.data

__all__ = ["run_on_cluster"]

_READERS = {
    ".parquet": "read_parquet",
    ".jsonl": "read_json",
    ".ndjson": "read_json",
    ".json": "read_json",
    ".csv": "read_csv",
}
_META = ".meta.json"


def run_on_cluster(  # noqa: PLR0913 - the command's options, passed through
    recipe_file: Path,
    *,
    input_name: str,
    output_name: str,
    model: str,
    overrides: tuple[str, ...],
    api_base: str | None,
    limit: int | None,
    max_concurrency: int,
    max_attempts: int,
    no_cache: bool,
    max_cost_usd: float | None,
    address: str | None,
    workers: int,
    say: Callable[[str], None],
    hub_repo: str | None = None,
    batch: bool = False,
    **_: Any,
) -> RunSummary:
    """Run the recipe file on Ray over *input_name*; write *output_name*; the summary."""
    from .._engine._interpreter import RetryPolicy

    if "-" in (input_name, output_name) or hub_repo:
        message = (
            "--engine ray reads and writes files (standard input and output, and "
            "--push-to-hub, are for runs on one machine)"
        )
        raise EngineError(message)
    require_ray()
    recipe, chosen = prepare(recipe_file, overrides, model, api_base)
    refuse_on_ray(recipe, chosen, batch=batch)  # before a cluster is started or joined
    output, filesystem = _output_folder(output_name)
    _connect(address, say)
    dataset = _read(input_name)
    if limit is not None:
        dataset = dataset.limit(limit)
    run = ClusterRun(
        recipe,
        model=chosen,
        max_concurrency=max_concurrency,
        cache=not no_cache,
        retry=RetryPolicy(max_attempts=max_attempts),
        max_cost_usd=max_cost_usd,
        workers=workers,
    )
    began, started = datetime.now(timezone.utc), time.perf_counter()
    rows_in = dataset.count()
    _forget_provenance(output, filesystem)
    import ray.data

    try:
        run.apply(dataset).write_parquet(
            output, filesystem=filesystem, mode=ray.data.SaveMode.OVERWRITE
        )
    except Exception as exc:
        raise run.failure(exc) from None
    rows_out, failures = _count(output, filesystem)
    summary = RunSummary(
        rows_in, rows_out, failures, 0, 0, 0, 0, 0.0, time.perf_counter() - started, run.stopped()
    ).with_usage(run.totals())
    engine = {"name": "ray", "workers": run.workers_joined(), "ray": ray.__version__}
    record = build_provenance(recipe, recipe_file, chosen.name, summary, began, overrides, engine)
    _write_text(filesystem, output + _META, json.dumps(record))
    return summary


def _connect(address: str | None, say: Callable[[str], None]) -> None:
    """Join the cluster at *address*, or start one on this machine (no dashboard, no usage
    statistics sent anywhere)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, log_to_driver=False)
        say(f"joined the Ray cluster at {address}")
    else:
        ray.init(include_dashboard=False, log_to_driver=False)
        say("started a Ray cluster on this machine (pass --address to join another)")


def _read(name: str) -> ray.data.Dataset:
    """The input as a Dataset: by extension, a folder of Parquet shards when it has none."""
    import ray.data

    suffix = Path(name.rstrip("/")).suffix.lower()
    reader = _READERS.get(suffix or ".parquet")
    name = name if "://" in name else str(Path(name).expanduser().resolve())
    if reader is None:
        message = f"{name}: --engine ray reads {', '.join(_READERS)} files or Parquet folders"
        raise InputFileError(message, path=name)
    try:
        dataset: ray.data.Dataset = getattr(ray.data, reader)(name)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"could not read {name}: {reason}"
        raise InputFileError(message, path=name) from None
    return dataset


def _output_folder(name: str) -> tuple[str, pyarrow.fs.FileSystem]:
    """The output folder (a path on its filesystem) and that filesystem; refused if it
    names a file, or a folder that holds anything but Parquet shards."""
    import pyarrow.fs as pafs

    if Path(name.rstrip("/")).suffix:
        message = (
            f"{name}: --engine ray writes a folder of Parquet shards; name it without an "
            "extension (out/self_instruct)"
        )
        raise EngineError(message)
    uri = name if "://" in name else str(Path(name).expanduser().resolve())
    filesystem, path = pafs.FileSystem.from_uri(uri)
    found = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    strangers = [f.base_name for f in found if not f.base_name.endswith(".parquet")]
    if strangers:
        message = (
            f"{name} holds files that are not Parquet shards ({', '.join(sorted(strangers)[:3])}"
            "...); name a new folder, or the folder of an earlier --engine ray run"
        )
        raise EngineError(message)
    return path, filesystem


def _forget_provenance(output: str, filesystem: pyarrow.fs.FileSystem) -> None:
    """Remove an earlier run's provenance: until this run writes its own, the folder is
    not finished."""
    import pyarrow.fs as pafs

    if filesystem.get_file_info(output + _META).type != pafs.FileType.NotFound:
        filesystem.delete_file(output + _META)


def _count(output: str, filesystem: pyarrow.fs.FileSystem) -> tuple[int, int]:
    """The rows written and how many of them failed (read from the shards' ``error``)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    written = ds.dataset(output, filesystem=filesystem, format="parquet")
    if "error" not in written.schema.names:
        return written.count_rows(), 0
    return written.count_rows(), written.count_rows(filter=pc.field("error").is_valid())


def _write_text(filesystem: pyarrow.fs.FileSystem, path: str, text: str) -> None:
    with filesystem.open_output_stream(path) as stream:
        stream.write(text.encode())
