"""The ``promptflow`` command.

``promptflow run RECIPE.py --input F --output F --model M`` runs a recipe file (a Python
module that defines ``recipe``) over a data file. The default model is the offline
``mock``, so a first run needs no key and no network.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

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
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: on when stderr is a terminal).",
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
    progress: bool | None,  # noqa: FBT001
) -> None:
    """Run RECIPE_FILE over the input rows and write the output."""
    from ._errors import PromptflowError
    from ._io.frames import check_format, read_frame, write_frame
    from ._io.recipes import load_recipe
    from ._model import Model

    try:
        check_format(output_path)  # fail before spending anything
        recipe = load_recipe(recipe_file)
        frame = read_frame(input_path, limit=limit)
        chosen = Model(model, api_base=api_base) if api_base else Model.coerce(model)
        started = time.perf_counter()
        result = recipe.execute(
            frame, model=chosen, max_concurrency=max_concurrency, progress=progress
        )
        write_frame(result.frame, output_path)
    except PromptflowError as exc:
        if ctx.obj["debug"]:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    elapsed = time.perf_counter() - started
    click.echo(f"{recipe!r}: {result.summary}", err=True)
    click.echo(f"wrote {result.frame.height} rows to {output_path} in {elapsed:.1f} s", err=True)
    if result.summary.failures:
        sys.exit(2 if result.summary.failures == result.frame.height else 0)


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
