"""The ``promptflow run`` command line and environment that the CLI tests start."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from promptflow_dsl.testing import Emulator


def promptflow_run(
    recipe: Path, source: Path, output: Path, *options: str, server: Emulator | None = None
) -> list[str]:
    """``promptflow run`` in this interpreter, with the model at *server* if one is given.

    >>> promptflow_run(Path("r.py"), Path("in.jsonl"), Path("out.jsonl"), "--limit", "3")[3:]
    ['run', 'r.py', '-i', 'in.jsonl', '-o', 'out.jsonl', '--limit', '3']
    """
    at_server = (
        [] if server is None else ["--model", "openai/loopback", "--api-base", server.api_base]
    )
    return [
        sys.executable,
        "-m",
        "promptflow_dsl",
        "run",
        str(recipe),
        "-i",
        str(source),
        "-o",
        str(output),
        *at_server,
        *options,
    ]


def run_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a run: a cache of its own below *tmp_path* and a test key."""
    return {
        **os.environ,
        "PROMPTFLOW_CACHE_DIR": str(tmp_path / "cache"),
        "OPENAI_API_KEY": "sk-test",
    }


def ledger_batches(ledger: Path) -> int:
    """How many batches a run's batch ledger names (0 while it is being created)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            return db.execute("select count(*) from batches").fetchone()[0]
    except sqlite3.Error:
        return 0


def signal_once_submitted(
    command: list[str],
    env: dict[str, str],
    ledger: Path,
    *,
    batches: int = 1,
    sig: int = signal.SIGKILL,
) -> subprocess.Popen[str]:
    """Start *command* and send it *sig* (SIGKILL by default) once its batch ledger names
    *batches* batches; returns the process (its stderr piped, as text)."""
    run = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while ledger_batches(ledger) < batches:
        assert time.monotonic() < deadline and run.poll() is None, "no batch was submitted"
        time.sleep(0.05)
    run.send_signal(sig)
    return run
