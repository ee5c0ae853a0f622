"""One run at a time writes an output: a lock beside it, held for the whole run.

The lock is the operating system's (``filelock``), so it goes away with its process: a
run that was killed leaves no lock to clear, and the next run takes the output over and
resumes it. The lock file also names its holder (pid, host, since when) for the message
that a second run gets.

>>> import tempfile, pathlib
>>> output = pathlib.Path(tempfile.mkdtemp()) / "out.parquet"
>>> with OutputLock(output):
...     with OutputLock(output):  # doctest: +ELLIPSIS
...         pass
Traceback (most recent call last):
...
promptflow_dsl._errors.OutputLockedError: ...out.parquet is being written by another run (pid ...
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from .._errors import OutputLockedError

__all__ = ["OutputLock", "describe_holder"]


class OutputLock:
    """Hold *output* (and its parts) for this run; refuse at once if another run holds it."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = output.with_name(f".{output.name}.lock")
        self._lock = FileLock(self.path, timeout=0)
        self.left_by: dict[str, object] | None = None  # the holder of a run that was killed

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            holder = describe_holder(self._holder())
            message = (
                f"{self.output} is being written by another run ({holder}); "
                "wait for it to finish, or write to another output"
            )
            raise OutputLockedError(message) from None
        self.left_by = self._holder()  # still named: its run ended without letting go
        mine = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self.path.write_text(json.dumps(mine))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Unlinked while still held: filelock's acquire checks that the file it locked is
        # still the one at the path, so a run waiting on the old file tries again.
        self.path.unlink(missing_ok=True)
        self._lock.release()

    def _holder(self) -> dict[str, object] | None:
        try:
            holder = json.loads(self.path.read_text() or "null")
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None


def describe_holder(holder: dict[str, object] | None) -> str:
    """One phrase naming a lock's holder: pid, host and since when."""
    if holder is None:
        return "holder unknown"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}"
