"""``promptflow batches``: the provider batches an output's runs submitted, and cancelling them.

The ledger is ``OUTPUT.parts/batches.sqlite`` for a run of the command line, or the file
beside the reply cache for runs from Python. Each batch not yet collected is looked up at
its provider (the key from the provider's variable, ``OPENAI_API_KEY`` or
``ANTHROPIC_API_KEY``).
"""

from __future__ import annotations

import time
from pathlib import Path

from .._engine._batch import BatchLedger, SubmittedBatch, batch_client
from .._engine._batch._batcher import describe_age
from .._engine._cache import default_cache_path
from .._engine._portal import run_sync
from .._secrets import scrub
from .parts import BATCH_LEDGER

__all__ = ["batch_report", "ledger_path"]


def ledger_path(output: str | None) -> Path:
    """The ledger of *output*, or the one beside the default cache when there is none."""
    if output is None:
        return default_cache_path().with_suffix(".batches.sqlite")
    path = Path(output)
    return path.with_name(path.name + ".parts") / BATCH_LEDGER


def batch_report(ledger_file: Path, *, cancel: bool = False) -> list[str]:
    """One line per batch not yet collected (its status at the provider); *cancel* asks the
    provider to stop each one first."""
    if not ledger_file.exists():
        return [f"no batches recorded in {ledger_file}"]
    ledger = BatchLedger(ledger_file)
    try:
        running = ledger.batches(running_only=True)
        collected = len(ledger.batches()) - len(running)
        if cancel:  # a run waiting for them will not send their requests again
            for batch in running:
                ledger.ask_to_stop(batch.id)
        lines = [run_sync(_describe(batch, cancel=cancel)) for batch in running]
    finally:
        ledger.close()
    if not running:
        lines.append("no batch is running")
    lines.append(f"{collected} batch(es) collected already ({ledger_file})")
    return lines


async def _describe(batch: SubmittedBatch, *, cancel: bool) -> str:
    head = f"{batch.id}  {batch.provider}/{batch.model}  {batch.requests} requests"
    age = describe_age(time.time() - batch.submitted_at)
    try:
        client = batch_client(batch.provider, batch.api_base, None)
        if cancel:
            await client.cancel(batch.id)
        state = await client.state(batch.id)
    except Exception as exc:  # the provider cannot be asked: say why, go on
        return f"{head}  {age} old  (could not ask {batch.provider}: {scrub(str(exc))})"
    counts = f"{state.succeeded}/{state.total} done, {state.failed} failed"
    return f"{head}  {state.status}  {counts}  {age} old"
