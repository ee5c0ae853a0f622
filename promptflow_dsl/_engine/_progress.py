"""A live progress display on the terminal: one bar per step.

Each bar shows rows done, failures, calls per second, tokens, dollars, elapsed and
remaining time. The display is quiet when stderr is not a terminal, and can be turned off.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

from ._types import Usage

__all__ = ["ProgressDisplay", "StepProgress"]


class StepProgress:
    """The bar of one step. Totals can grow (the CLI adds rows chunk by chunk)."""

    def __init__(self, display: ProgressDisplay, name: str) -> None:
        self._display, self.name = display, name
        self.total = self.done = self.failures = self.calls = self.tokens = 0
        self.cost = 0.0
        self._started = time.monotonic()
        self._task = display.add_task(name)

    def add_total(self, rows: int) -> None:
        """Expect *rows* more rows."""
        self.total += rows
        self._display.update(self._task, total=self.total)

    def advance(self, *, failed: bool, usage: Usage | None) -> None:
        """Count one finished row."""
        self.done += 1
        self.failures += failed
        if usage is not None and not usage.cache_hit:
            self.calls += usage.attempts
            self.tokens += (usage.input_tokens or 0) + (usage.output_tokens or 0)
            self.cost += usage.cost_usd or 0.0
        rate = self.calls / max(1e-9, time.monotonic() - self._started)
        self._display.update(
            self._task,
            completed=self.done,
            stats=(
                f"{self.failures} failed · {rate:.1f} calls/s · "
                f"{self.tokens:,} tok · ${self.cost:.4f}"
            ),
        )


class ProgressDisplay:
    """All the bars of one run. ``enabled=None`` means: only on a terminal."""

    def __init__(self, *, enabled: bool | None = None) -> None:
        show = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None
        self._steps: dict[str, StepProgress] = {}
        if show:
            from rich.console import Console
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
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )

    def step(self, name: str) -> StepProgress:
        """The bar of the step called *name* (made on first use)."""
        if name not in self._steps:
            self._steps[name] = StepProgress(self, name)
        return self._steps[name]

    def add_task(self, name: str) -> Any:
        return self._progress.add_task(name, total=0, stats="") if self._progress else None

    def update(self, task: Any, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(task, **fields)

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
