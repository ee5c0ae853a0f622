"""The ``promptflow`` command.

``promptflow run RECIPE.py --input F --output F --model M`` runs a recipe file (a Python
module that defines ``recipe``) over a data file. The default model is the offline
``mock``, so a first run needs no key and no network.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

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
    "input_name",
    required=True,
    metavar="PATH",
    help="Input rows: .jsonl, .json, .csv, .parquet, a datasets folder, "
    "hf://datasets/OWNER/NAME[/FILE], or - (JSON Lines on standard input).",
)
@click.option(
    "--output",
    "-o",
    "output_name",
    required=True,
    metavar="PATH",
    help="Where to write: .jsonl, .json, .csv, .parquet, a name without extension "
    "(a datasets folder), or - (JSON Lines on standard output).",
)
@click.option(
    "--model",
    "-m",
    default="mock",
    show_default=True,
    help="Default model for every step: any LiteLLM model string, or 'mock' (offline).",
)
@click.option(
    "--set",
    "-s",
    "overrides",
    multiple=True,
    metavar="STEP.ATTRIBUTE=VALUE",
    help="Override a step's attribute or model (repeatable), e.g. "
    "self_instruct.num_instructions=5, text_generation.model=gpt-4o-mini, "
    "text_generation.model.temperature=0.2.",
)
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="STEP.PARAM=COLUMN",
    help="Read a technique input from another column (repeatable), e.g. "
    "self_instruct.input=document.",
)
@click.option(
    "--api-base",
    default=None,
    help="Base URL of an OpenAI-compatible server (no credentials in it: the key goes in "
    "the provider's environment variable, e.g. OPENAI_API_KEY).",
)
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
    "--max-attempts",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Tries per request on a transient failure (429, 5xx, timeout, dropped connection).",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=0),
    default=None,
    help="Exit non-zero when more rows than this fail.",
)
@click.option(
    "--push-to-hub",
    "hub_repo",
    default=None,
    metavar="OWNER/NAME",
    help="After the run, push the output and a generated dataset card to this Hub dataset "
    "(the hf extra; the token from HF_TOKEN).",
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
    help="How many rows --dry-run rehearses offline before scaling up (all of them for a "
    "recipe with a whole-frame step).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bars (default: on when stderr is a terminal).",
)
@click.option(
    "--batch",
    is_flag=True,
    help="Send the calls through the providers' batch APIs (openai/ and anthropic/ models): "
    "half the price, answers within 24 hours. A run stopped while batches run collects "
    "them when started again.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: run on a Ray cluster (the ray extra), reading and writing Parquet shards.",
)
@click.option(
    "--address", default=None, help="--engine ray: the cluster to join (default: start one here)."
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="--engine ray: worker actors, each with --max-concurrency calls in flight.",
)
@click.pass_context
def run(ctx: click.Context, recipe_file: Path, dry_run: bool, **options: Any) -> None:  # noqa: FBT001
    """Run RECIPE_FILE over the input rows and write the output.

    Rows are read, run and written a chunk at a time. A run that stops, even killed,
    resumes when started again with the same arguments: finished chunks are on disk and
    finished calls are in the cache.
    """
    import signal

    from ._errors import EngineError, PromptflowError

    # A terminated run exits like an interrupted one: cleanups run, the scratch goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    options["overrides"] = (*options["overrides"], *map(_as_override, options.pop("mappings")))
    try:
        if dry_run:
            from ._io.run_file import dry_run as rehearse

            if options["engine"] == "ray":
                message = "--dry-run rehearses on this machine: leave out --engine ray"
                raise EngineError(message)

            click.echo(rehearse(recipe_file, **options))
            return
        _run_and_report(recipe_file, **options)
    except PromptflowError as exc:
        _fail(ctx, exc)
    except KeyboardInterrupt:
        click.echo(
            "interrupted: the finished chunks and calls are kept; "
            "run the same command again to resume",
            err=True,
        )
        sys.exit(130)


def _as_override(mapping: str) -> str:
    """``STEP.PARAM=COLUMN`` as the override ``STEP.inputs.PARAM=COLUMN``."""
    step, _, rest = mapping.partition(".")
    return f"{step}.inputs.{rest}"


def _fail(ctx: click.Context, exc: BaseException) -> NoReturn:
    """Print *exc* as one line (its traceback under ``--debug``), keys masked; exit 1.

    The traceback is scrubbed whole: it prints the provider's chained exceptions too.
    """
    import traceback

    from ._secrets import scrub

    text = "".join(traceback.format_exception(exc)) if ctx.obj["debug"] else f"error: {exc}"
    click.echo(scrub(text.rstrip("\n")), err=True)
    sys.exit(1)


def _say(note: str) -> None:
    from ._secrets import scrub

    click.echo(scrub(note), err=True)


def _run_and_report(recipe_file: Path, *, max_failures: int | None, **options: Any) -> None:
    run_file = _engine(options)
    started = time.perf_counter()
    summary = run_file(recipe_file, say=_say, **options)
    elapsed = time.perf_counter() - started
    target = "standard output" if options["output_name"] == "-" else options["output_name"]
    click.echo(f"{summary}", err=True)
    click.echo(f"wrote {summary.rows_out} rows to {target} in {elapsed:.1f} s", err=True)
    if summary.stopped:
        click.echo(f"stopped: {summary.stopped}", err=True)
    emptiness = _why_empty(summary)
    if emptiness:
        click.echo(f"warning: {emptiness}", err=True)
    if summary.rows_out and summary.failures == summary.rows_out:
        sys.exit(2)
    if max_failures is not None and summary.failures > max_failures:
        click.echo(
            f"error: {summary.failures} rows failed, more than --max-failures {max_failures}",
            err=True,
        )
        sys.exit(3)


def _engine(options: dict[str, Any]) -> Callable[..., Any]:
    """What runs the recipe file: this machine, or Ray (which takes the same options)."""
    if options.pop("engine") == "ray":
        from ._ray._files import run_on_cluster

        return run_on_cluster
    from ._io.run_file import run_file

    del options["address"], options["workers"]
    return run_file


def _why_empty(summary: Any) -> str | None:
    """Why an output holds no usable row, or None when it holds some."""
    if summary.rows_in == 0:
        return "the input has no rows, so the output has none; check --input and --limit"
    if summary.rows_out == 0:
        return (
            f"all {summary.rows_in} input rows were removed by the recipe's filter or "
            "select steps (rows a step failed on are removed too when a filter reads their "
            "null outputs); the output has no rows"
        )
    if summary.failures == summary.rows_out:
        return (
            f"every one of the {summary.rows_out} rows failed (the first failure is above); "
            "the output holds their errors"
        )
    return None


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
        if not recipe_file.exists():
            message = f"{recipe_file} does not exist"
            raise PromptflowError(message)
        if recipe_file.suffix.lower() != ".py":
            record = read_provenance(recipe_file)
            if record is None:
                message = f"{recipe_file} carries no provenance (was it written by promptflow run?)"
                raise PromptflowError(message)
            click.echo(json.dumps(record, indent=2))
            return
        click.echo(describe_recipe(load_recipe(recipe_file)))
    except PromptflowError as exc:
        _fail(ctx, exc)


@main.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option(
    "--seeds",
    type=click.Path(path_type=Path),
    default=None,
    help="Seed tasks (any input format) to compare the instructions with (ROUGE-L).",
)
@click.option(
    "--to",
    "report_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the HTML (default: OUTPUT's name with .report.html).",
)
@click.option("--instruction-column", default=None, help="The instructions (default: guessed).")
@click.option("--response-column", default=None, help="The responses (default: guessed).")
@click.pass_context
def report(
    ctx: click.Context,
    output: Path,
    seeds: Path | None,
    report_path: Path | None,
    instruction_column: str | None,
    response_column: str | None,
) -> None:
    """Write a self-contained HTML report of OUTPUT (a file or datasets folder).

    Rows, failures, tokens, dollars and models; length distributions; the most common
    leading verbs; and with --seeds, the ROUGE-L similarity to the seed instructions.
    """
    from ._errors import PromptflowError
    from ._report import build_report

    target = report_path or output.with_suffix(".report.html")
    try:
        if not output.exists():
            message = f"{output} does not exist"
            raise PromptflowError(message)
        page = build_report(
            output,
            seeds=seeds,
            instruction_column=instruction_column,
            response_column=response_column,
        )
        try:
            target.write_text(page)
        except OSError as exc:
            message = f"could not write the report to {target}: {exc.strerror or exc}"
            raise PromptflowError(message) from None
    except PromptflowError as exc:
        _fail(ctx, exc)
    click.echo(f"wrote {target} ({len(page) / 1024:.0f} KiB)")


@main.command()
@click.option(
    "--provider",
    default="openai",
    show_default=True,
    help="Which API to emulate: openai, anthropic, ollama, gemini, cohere, or an "
    "OpenAI-compatible server with a quirk: rejects-tools, fenced-json, no-usage.",
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0: any free port.",
)
@click.option("--latency", default=0.0, type=click.FloatRange(min=0), help="Seconds per reply.")
@click.option("--seed", default=0, show_default=True, help="Seed of the latency and faults.")
@click.option("--rate-429", default=0.0, type=click.FloatRange(0, 1), help="Share of 429s.")
@click.option(
    "--retry-after",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a 429 asks to wait (a header, or Gemini's retryDelay).",
)
@click.option("--rate-500", default=0.0, type=click.FloatRange(0, 1), help="Share of 500s.")
@click.option(
    "--rate-overloaded",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Share of overloads (529 on anthropic, 503 elsewhere).",
)
@click.option("--rate-hang", default=0.0, type=click.FloatRange(0, 1), help="Share of hangs.")
@click.option(
    "--hang-seconds",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How long a hang lasts.",
)
@click.option(
    "--rate-malformed", default=0.0, type=click.FloatRange(0, 1), help="Share of cut replies."
)
def serve(provider: str, port: int, latency: float, seed: int, **rates: float) -> None:
    """Serve a provider emulator on 127.0.0.1 until Ctrl-C, for runs against it.

    Replies are schema-valid fabrications built from each request, in the provider's own
    wire format, with the faults asked for. It prints the --model and --api-base to give
    `promptflow run`.
    """
    import signal

    from .testing import PROVIDERS, Faults, instructions, make_emulator

    if provider not in PROVIDERS:
        click.echo(
            f"error: no emulator {provider!r}; choose one of {', '.join(PROVIDERS)}", err=True
        )
        sys.exit(1)
    try:
        server = make_emulator(
            provider, latency=latency, faults=Faults(**rates), seed=seed, port=port
        ).start()
    except (ValueError, OSError) as exc:
        click.echo(f"error: could not serve {provider} on port {port}: {exc}", err=True)
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for line in instructions(server):
            click.echo(line)
        click.echo("Ctrl-C stops it.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo(f"stopped after {server.stats.requests} requests")
    finally:
        server.stop()


@main.command()
@click.argument("output", required=False)
@click.option("--cancel", is_flag=True, help="Ask the provider to stop each running batch.")
def batches(output: str | None, cancel: bool) -> None:  # noqa: FBT001
    """List the provider batches that runs of OUTPUT submitted and that are not collected.

    Without OUTPUT, the batches of runs from Python (noted beside the reply cache). Run the
    same command again to collect them; --cancel stops them (answers made are kept).
    """
    from ._errors import PromptflowError
    from ._io.batches import batch_report, ledger_path

    try:
        for line in batch_report(ledger_path(output), cancel=cancel):
            click.echo(line)
    except PromptflowError as exc:
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
    if not path.exists():
        click.echo(f"{path}: removed 0 replies")
        return
    cache = ReplyCache(path)
    if cache.read_only:
        click.echo(f"error: {path} is read-only: nothing removed; make it writable first", err=True)
        sys.exit(1)
    click.echo(f"{path}: removed {cache.clear():,} replies")
