"""The ``promptflow`` command.

``promptflow run RECIPE.py --input F --output F --model M`` runs a recipe file (a Python
module that defines ``recipe``) over a data file. The default model is the offline
``mock``, so a first run needs no key and no network.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ._recipe._recipe import RunSummary

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:  # noqa: FBT001
    """Prompt programs for synthetic instruction data."""
    ctx.obj = {"debug": debug}


@main.command()
@click.argument("recipe_file", type=click.Path(path_type=Path))
@click.option(
    "--input",
    "-i",
    "input_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Input rows: .jsonl, .json, .csv or .parquet.",
)
@click.option(
    "--output",
    "-o",
    "output_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the output (format by extension).",
)
@click.option(
    "--model",
    "-m",
    default="mock",
    show_default=True,
    help="Default model for every step: any LiteLLM model string, or 'mock' (offline).",
)
@click.option("--api-base", default=None, help="Base URL of an OpenAI-compatible server.")
@click.option(
    "--max-concurrency",
    default=16,
    show_default=True,
    type=click.IntRange(min=1),
    help="Calls in flight at once.",
)
@click.option("--limit", default=None, type=click.IntRange(min=0), help="Only the first N rows.")
@click.option(
    "--chunk-size",
    default=5000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows read, run and written at a time (memory stays bounded).",
)
@click.option(
    "--no-cache", is_flag=True, help="Make every call afresh (the cache is on by default)."
)
@click.option(
    "--max-cost-usd",
    type=float,
    default=None,
    help="Stop issuing calls once this many dollars are spent.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=0),
    default=None,
    help="Exit non-zero when more rows than this fail.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Make no call: show the first prompts and estimate calls, tokens and dollars.",
)
@click.option(
    "--dry-run-rows",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many rows --dry-run rehearses offline before scaling up.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bars (default: on when stderr is a terminal).",
)
@click.pass_context
def run(
    ctx: click.Context,
    recipe_file: Path,
    input_path: Path,
    output_path: Path,
    model: str,
    api_base: str | None,
    max_concurrency: int,
    limit: int | None,
    chunk_size: int,
    no_cache: bool,  # noqa: FBT001
    max_cost_usd: float | None,
    max_failures: int | None,
    dry_run: bool,  # noqa: FBT001
    dry_run_rows: int,
    progress: bool | None,  # noqa: FBT001
) -> None:
    """Run RECIPE_FILE over the input rows and write the output.

    Rows are read, run and written a chunk at a time. A run that stops, even killed,
    resumes when started again with the same arguments: finished chunks are on disk and
    finished calls are in the cache.
    """
    from ._errors import PromptflowError

    if dry_run:
        try:
            click.echo(_dry_run(recipe_file, input_path, model, api_base, limit, dry_run_rows))
        except PromptflowError as exc:
            if ctx.obj["debug"]:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        return
    started = time.perf_counter()
    try:
        summary = _run(
            recipe_file,
            input_path,
            output_path,
            model,
            api_base,
            max_concurrency,
            limit,
            chunk_size,
            no_cache,
            max_cost_usd,
            progress,
        )
    except PromptflowError as exc:
        if ctx.obj["debug"]:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    elapsed = time.perf_counter() - started
    click.echo(f"{summary}", err=True)
    click.echo(f"wrote {summary.rows_out} rows to {output_path} in {elapsed:.1f} s", err=True)
    if summary.stopped:
        click.echo(f"stopped: {summary.stopped}", err=True)
    if summary.rows_out and summary.failures == summary.rows_out:
        sys.exit(2)
    if max_failures is not None and summary.failures > max_failures:
        click.echo(
            f"error: {summary.failures} rows failed, more than --max-failures {max_failures}",
            err=True,
        )
        sys.exit(3)


def _dry_run(
    recipe_file: Path,
    input_path: Path,
    model: str,
    api_base: str | None,
    limit: int | None,
    rows: int,
) -> str:
    from ._engine._portal import run_sync
    from ._engine._run import Rehearsal, RunContext
    from ._errors import PromptflowError
    from ._io.chunks import count_rows, iter_chunks
    from ._io.estimate import estimate, format_estimate
    from ._io.recipes import load_recipe
    from ._model import Model

    if not input_path.is_file():
        message = f"input file {input_path} does not exist"
        raise PromptflowError(message)
    recipe = load_recipe(recipe_file)
    total = count_rows(input_path, limit=limit)
    sample = next(iter_chunks(input_path, min(rows, total) or 1, limit=limit), None)
    if sample is None or total == 0:
        return "dry run: the input has no rows"
    recipe.check(sample.columns)
    chosen = Model(model, api_base=api_base) if api_base else Model.coerce(model)
    run = RunContext(model=chosen, rehearsal=Rehearsal())
    run_sync(recipe.apply(sample, run))
    assert run.rehearsal is not None
    return format_estimate(estimate(run.rehearsal, total / sample.height), total, sample.height)


def _run(  # noqa: PLR0913 - the command's options, passed through
    recipe_file: Path,
    input_path: Path,
    output_path: Path,
    model: str,
    api_base: str | None,
    max_concurrency: int,
    limit: int | None,
    chunk_size: int,
    no_cache: bool,  # noqa: FBT001
    max_cost_usd: float | None,
    progress: bool | None,  # noqa: FBT001
) -> RunSummary:
    import hashlib

    from ._engine._cache import open_cache
    from ._engine._portal import run_sync
    from ._engine._progress import ProgressDisplay
    from ._engine._run import RunContext
    from ._errors import PromptflowError
    from ._io.chunks import PartWriter, iter_chunks
    from ._io.frames import check_format
    from ._io.provenance import KEY as PROVENANCE_KEY
    from ._io.provenance import build_provenance, sidecar
    from ._io.recipes import load_recipe
    from ._model import Model
    from ._recipe._recipe import RunSummary

    check_format(output_path)  # fail before spending anything
    if not input_path.is_file():
        message = f"input file {input_path} does not exist"
        raise PromptflowError(message)
    recipe = load_recipe(recipe_file)
    chosen = Model(model, api_base=api_base) if api_base else Model.coerce(model)
    size = chunk_size if recipe.row_wise else 2**62  # a whole-frame step sees every row
    stat = input_path.stat()
    writer = PartWriter(
        output_path,
        {
            "input": str(input_path.resolve()),
            "input_bytes": stat.st_size,
            "input_mtime_ns": stat.st_mtime_ns,
            "limit": limit,
            "chunk_size": size,
            "recipe_sha256": hashlib.sha256(recipe_file.read_bytes()).hexdigest(),
            "model": chosen.name,
            "api_base": chosen.api_base,
        },
    )
    started, rows_in, began = time.perf_counter(), 0, datetime.now(timezone.utc)
    with ProgressDisplay(enabled=progress) as display:
        run = RunContext(
            model=chosen,
            max_concurrency=max_concurrency,
            cache=open_cache(not no_cache),
            max_cost_usd=max_cost_usd,
            display=display,
        )
        for index, chunk in enumerate(iter_chunks(input_path, size, limit=limit)):
            if index == 0:
                recipe.check(chunk.columns)  # a missing column fails before the first call
            rows_in += chunk.height
            if not writer.done(index):
                writer.write(index, run_sync(recipe.apply(chunk, run)))
    first_error = writer.first_error()
    rows_out, failures = writer.counts()
    summary = RunSummary.of(run, rows_in, rows_out, failures, time.perf_counter() - started)
    record = json.dumps(build_provenance(recipe, recipe_file, chosen.name, summary, began))
    writer.finish(metadata={PROVENANCE_KEY: record})
    if output_path.suffix.lower() != ".parquet":
        sidecar(output_path).write_text(record)
    if first_error:
        click.echo(
            f"first failure: step {first_error['step']!r}: {first_error['message']}", err=True
        )
    return summary


@main.command()
@click.argument("name", required=False)
def techniques(name: str | None) -> None:
    """List the techniques, or print the reference of technique NAME."""
    from ._reference import TECHNIQUES, render_reference

    if name is None:
        width = max(map(len, TECHNIQUES))
        for key, technique in TECHNIQUES.items():
            click.echo(f"{key:<{width}}  {technique.summary}")
        return
    if name not in TECHNIQUES:
        click.echo(
            f"error: no technique {name!r}; the techniques are {', '.join(TECHNIQUES)}", err=True
        )
        sys.exit(1)
    click.echo(render_reference(TECHNIQUES[name]), nl=False)


@main.command()
@click.argument("folder", type=click.Path(path_type=Path), default=Path("docs/reference"))
def docs(folder: Path) -> None:
    """Write the technique reference pages into FOLDER (default: docs/reference)."""
    from ._reference import write_reference

    for path in write_reference(folder):
        click.echo(f"wrote {path}")


@main.command()
@click.argument("recipe_file", metavar="RECIPE_OR_OUTPUT", type=click.Path(path_type=Path))
@click.pass_context
def show(ctx: click.Context, recipe_file: Path) -> None:
    """Show a recipe file (steps, columns, models, a Mermaid graph), or an output's provenance."""
    from ._errors import PromptflowError
    from ._io.describe import describe_recipe
    from ._io.provenance import read_provenance
    from ._io.recipes import load_recipe

    try:
        if recipe_file.suffix.lower() != ".py":
            record = read_provenance(recipe_file)
            if record is None:
                message = f"{recipe_file} carries no provenance (was it written by promptflow run?)"
                raise PromptflowError(message)
            click.echo(json.dumps(record, indent=2))
            return
        click.echo(describe_recipe(load_recipe(recipe_file)))
    except PromptflowError as exc:
        if ctx.obj["debug"]:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@main.group()
def cache() -> None:
    """Inspect or clear the reply cache."""


@cache.command()
def info() -> None:
    """Where the cache is, how many replies it holds, and its size."""
    from ._engine._cache import ReplyCache, default_cache_path

    path = default_cache_path()
    if not path.exists():
        click.echo(f"{path}: no cache yet")
        return
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    click.echo(f"{path}: {len(ReplyCache(path)):,} replies, {size / 2**20:.1f} MiB")


@cache.command()
def clear() -> None:
    """Delete every cached reply."""
    from ._engine._cache import ReplyCache, default_cache_path

    path = default_cache_path()
    removed = ReplyCache(path).clear() if path.exists() else 0
    click.echo(f"{path}: removed {removed:,} replies")
