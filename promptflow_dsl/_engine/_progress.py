"""A live progress bar on the terminal: rows done, failures, elapsed and remaining time.

Quiet when stderr is not a terminal, or when turned off.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

__all__ = ["ProgressBar"]


class ProgressBar:
    """One bar for one step. ``enabled=None`` means: only on a terminal."""

    def __init__(self, label: str, total: int, *, enabled: bool | None = None) -> None:
        self.failures = 0
        show = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None
        if show and total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("rows · {task.fields[failures]} failed"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._progress.add_task(label, total=total, failures=0)

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, *, failed: bool) -> None:
        """Count one finished row."""
        self.failures += failed
        if self._progress is not None:
            self._progress.update(self._task, advance=1, failures=self.failures)
