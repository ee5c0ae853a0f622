"""Run a recipe file over an input and write the output: what ``promptflow run`` does.

The input is read a chunk at a time and each finished chunk is written at once as a part
file, so a stopped run resumes; standard input and output and Hub inputs go through a
scratch folder; the output carries its provenance (and a datasets folder its card).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from .._engine._account import Account
from .._engine._batch import tell_running_batches
from .._engine._cache import open_cache
from .._engine._interpreter import RetryPolicy
from .._engine._portal import run_sync
from .._engine._progress import ProgressDisplay
from .._engine._session import Rehearsal, Session
from .._errors import PromptflowError
from .._model import Model
from .._recipe._bookkeeping import normalise_bookkeeping
from .._recipe._overrides import apply_overrides
from .._recipe._overwrites import overwrite_warnings
from .._recipe._recipe import Recipe, RunSummary
from .._recipe._stream import stream_chunks
from .chunks import count_rows, iter_chunks
from .estimate import estimate, format_estimate
from .frames import DATASET_FOLDER, check_output, read_frame
from .hf import check_hub_repo, dataset_card, push_to_hub
from .lock import OutputLock, describe_holder
from .parts import PartWriter
from .provenance import KEY as PROVENANCE_KEY
from .provenance import LOCAL_ENGINE, build_provenance, sidecar
from .recipes import load_recipe
from .sources import STDIO, open_source

__all__ = ["dry_run", "prepare", "run_file"]


def prepare(
    recipe_file: Path, overrides: tuple[str, ...], model: str, api_base: str | None
) -> tuple[Recipe, Model]:
    """The recipe with the --set overrides applied, and the run's default model."""
    chosen = Model(model, api_base=api_base) if api_base else Model.coerce(model)
    recipe = apply_overrides(load_recipe(recipe_file), overrides, default_model=chosen)
    return recipe, chosen


def dry_run(
    recipe_file: Path,
    *,
    input_name: str,
    model: str,
    overrides: tuple[str, ...],
    api_base: str | None,
    limit: int | None,
    dry_run_rows: int,
    batch: bool = False,
    **_: Any,
) -> str:
    recipe, chosen = prepare(recipe_file, overrides, model, api_base)
    with tempfile.TemporaryDirectory(prefix="promptflow-") as scratch:
        source = open_source(input_name, Path(scratch))
        total = count_rows(source.path, limit=limit)
        # A whole-frame step (sampling, a bootstrap loop) needs every row, as in a real run.
        rows = dry_run_rows if recipe.row_wise else total
        sample = next(iter_chunks(source.path, min(rows, total) or 1, limit=limit), None)
    if sample is None or total == 0:
        return "dry run: the input has no rows"
    recipe.check(sample.columns)
    rehearsal = Rehearsal()  # the session records each call, then answers it offline
    run_sync(recipe.apply(sample, Session(model=chosen, rehearsal=rehearsal)))
    estimates = estimate(rehearsal, total / sample.height, batch=batch)
    return format_estimate(estimates, total, sample.height)


def run_file(recipe_file: Path, **options: Any) -> RunSummary:
    """Run in a scratch folder (for standard input and output, Hub copies), always removed.

    *options* are the ``promptflow run`` options; ``say`` prints a note for the user.
    """
    with tempfile.TemporaryDirectory(prefix="promptflow-") as scratch:
        return _run_in(Path(scratch), recipe_file, **options)


def _run_in(  # noqa: PLR0913 - the command's options, passed through
    scratch: Path,
    recipe_file: Path,
    *,
    input_name: str,
    output_name: str,
    model: str,
    overrides: tuple[str, ...],
    api_base: str | None,
    limit: int | None,
    chunk_size: int,
    hub_repo: str | None,
    say: Callable[[str], None],
    **options: Any,
) -> RunSummary:
    to_stdout = output_name == STDIO
    output_path = scratch / "stdout.jsonl" if to_stdout else Path(output_name)
    output_path = output_path.resolve() if output_path.name in ("", "..") else output_path
    output_format = check_output(output_path)  # fail before spending anything
    if hub_repo:
        check_hub_repo(hub_repo)  # the hf extra or a bad name: say so now, not after the run
    recipe, chosen = prepare(recipe_file, overrides, model, api_base)
    source = open_source(input_name, scratch)
    total_rows = count_rows(source.path, limit=limit)  # checks every line before any call
    size = chunk_size if recipe.row_wise else 2**62  # a whole-frame step sees every row
    chunks = iter_chunks(source.path, size, limit=limit)
    first = next(chunks, None)
    if first is not None:
        recipe.check(first.columns)  # a missing column fails before the first call
        normalise_bookkeeping(first)  # so does a column that only shares a reserved name
        for line in overwrite_warnings(recipe.steps, first.columns):
            say(f"warning: {line}")
    manifest = {
        **source.identity,
        "limit": limit,
        "chunk_size": size,
        "recipe_sha256": hashlib.sha256(recipe_file.read_bytes()).hexdigest(),
        "overrides": list(overrides),
        "model": chosen.name,
        "api_base": chosen.api_base,
    }
    with OutputLock(output_path) as lock:
        if lock.left_by is not None:
            say(f"resuming the output of a run that stopped ({describe_holder(lock.left_by)})")
        writer = PartWriter(output_path, manifest)
        if writer.restarted:
            say(
                "starting over: the parts on disk are of another input, recipe, model, "
                "--set or chunk size (finished calls still come from the cache)"
            )
        if writer.resumed:
            chunk_count = -(-total_rows // size)
            spent = writer.spent()
            say(
                f"resuming: {writer.finished()} of {chunk_count} chunks done, "
                f"{int(spent.get('calls', 0))} calls made before (their replies are cached)"
            )
        try:
            every = itertools.chain([first] if first is not None else [], chunks)
            summary, began = _run_chunks(
                recipe, every, writer, chosen, total_rows=total_rows, say=say, **options
            )
            totals = summary.with_usage(writer.spent())  # every run's calls for this output
            engine = {**LOCAL_ENGINE, "batch": bool(options.get("batch"))}
            provenance = build_provenance(
                recipe, recipe_file, chosen.name, totals, began, overrides, engine
            )
            writer.finish(metadata={PROVENANCE_KEY: json.dumps(provenance)})
        finally:
            writer.close()
        _publish(output_path, output_format, provenance, hub_repo, say, to_stdout=to_stdout)
    return summary


def _run_chunks(
    recipe: Recipe,
    chunks: Iterable[pl.DataFrame],
    writer: PartWriter,
    chosen: Model,
    *,
    total_rows: int,
    max_concurrency: int,
    max_attempts: int,
    no_cache: bool,
    max_cost_usd: float | None,
    progress: bool | None,
    batch: bool,
    say: Callable[[str], None],
    **_: Any,
) -> tuple[RunSummary, datetime]:
    """Apply the recipe to each chunk not yet written and write it as a part."""
    started, began = time.perf_counter(), datetime.now(timezone.utc)
    account = Account(max_cost_usd=max_cost_usd, spent=writer.spent(), sink=writer.record_spend)
    with ProgressDisplay(enabled=progress) as display:
        session = Session(
            model=chosen,
            max_concurrency=max_concurrency,
            cache=open_cache(not no_cache),
            retry=RetryPolicy(max_attempts=max_attempts),
            account=account,
            display=display,
            batch=batch,
            batch_ledger=writer.batches,
        )
        session.check_models(recipe.step_models)  # before any call
        written = display.step("input rows written")  # the whole file, not the chunks so far
        written.add_total(total_rows)
        session.replay_numbered(writer.taken_samples())
        heights: dict[int, int] = {}

        def unfinished() -> Iterator[tuple[int, pl.DataFrame]]:
            for index, chunk in enumerate(chunks):
                heights[index] = chunk.height
                if writer.done(index):
                    written.advance_rows(chunk.height)
                else:
                    yield index, normalise_bookkeeping(chunk)

        def deliver(index: int, frame: pl.DataFrame, numbered: list[tuple[str, int]]) -> None:
            writer.write(index, frame, numbered=numbered)
            written.advance_rows(heights[index])

        run_sync(_through(recipe, unfinished(), session, deliver))
        rows_in = sum(heights.values())
    first_error = writer.first_error()
    if first_error:
        say(f"first failure: step {first_error['step']!r}: {first_error['message']}")
    rows_out, failures = writer.counts()
    elapsed = time.perf_counter() - started
    return RunSummary.of(session, rows_in, rows_out, failures, elapsed), began


async def _through(
    recipe: Recipe,
    chunks: Iterable[tuple[int, pl.DataFrame]],
    session: Session,
    deliver: Callable[[int, pl.DataFrame, list[tuple[str, int]]], None],
) -> None:
    """Each chunk through the recipe, delivered in order. Rows of a row-wise recipe that
    calls models stream across chunks, so the window of calls stays full at a boundary."""
    try:
        if recipe.row_wise and recipe.calls_models:
            await stream_chunks(recipe.steps, chunks, session, deliver)
            return
        for index, chunk in chunks:
            numbered: list[tuple[str, int]] = []
            with session.numbering_into(numbered):
                frame = await recipe.apply(chunk, session)
            deliver(index, frame, numbered)
    finally:  # batches still running keep running: say how to collect them
        again = "run the same command again (`promptflow batches OUTPUT` lists or cancels them)"
        tell_running_batches(await session.aclose(), again)


def _publish(
    output_path: Path,
    output_format: str,
    provenance: dict[str, Any],
    hub_repo: str | None,
    say: Callable[[str], None],
    *,
    to_stdout: bool,
) -> None:
    """What follows the joined output: its sidecar and card, the push, standard output."""
    record = json.dumps(provenance)
    if output_format == DATASET_FOLDER:
        (output_path / "README.md").write_text(dataset_card(provenance))
    if output_format != ".parquet" and not to_stdout:
        sidecar(output_path).write_text(record)
    if hub_repo:
        try:
            url = push_to_hub(read_frame(output_path), hub_repo, dataset_card(provenance))
        except PromptflowError as exc:
            where = "standard output" if to_stdout else output_path
            message = f"{exc}. The output is written to {where}"
            raise PromptflowError(message) from None
        say(f"pushed to {url}")
    if to_stdout:
        with output_path.open("rb") as handle:
            shutil.copyfileobj(handle, sys.stdout.buffer)
        sys.stdout.buffer.flush()
