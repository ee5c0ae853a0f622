"""The ``promptflow run`` command line and environment that the CLI tests start."""

import os
import sys
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
