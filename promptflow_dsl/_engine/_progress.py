"""Progress, wherever a run is watched: a live bar per step on a terminal, one updating line
in a notebook, and a log line every few seconds elsewhere (CI, nohup, a log file).

Each step shows rows done of the total, failures, calls per second, tokens, dollars and
time left; a model that is waiting out a rate limit says so, and until when.

>>> import io
>>> out = io.StringIO()
>>> with ProgressDisplay(enabled=True, stream=out, interval_s=0) as display:
...     bar = display.step("self_instruct")
...     bar.add_total(2)
...     bar.advance(failed=False, usage=None)
>>> print(out.getvalue().splitlines()[-1])  # doctest: +ELLIPSIS
progress: self_instruct 1/2 rows, 0 failed; 0.0 calls/s, 0 tok, $0.0000; ...
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from types import TracebackType
from typing import Any, TextIO

from ._types import Usage

__all__ = ["ProgressDisplay", "StepProgress"]

LOG_INTERVAL_S = float(os.environ.get("PROMPTFLOW_PROGRESS_EVERY", "10"))
"""Seconds between two progress lines when stderr is not a terminal
(``PROMPTFLOW_PROGRESS_EVERY``, default 10)."""

NOTEBOOK_INTERVAL_S = 0.5
"""Seconds between two updates of a notebook's progress line (it is replaced in place)."""


class StepProgress:
    """The counts of one step. Totals can grow (the CLI adds rows chunk by chunk)."""

    def __init__(self, display: ProgressDisplay, name: str) -> None:
        self._display, self.name = display, name
        self.total = self.done = self.failures = self.calls = self.tokens = 0
        self.cost = 0.0
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
        self._display.update(self._task, completed=self.done, stats=self.stats())

    def advance_rows(self, rows: int) -> None:
        """Count *rows* finished rows at once (a chunk written, say)."""
        self.done += rows
        self._display.update(self._task, completed=self.done, stats=self.stats())

    def stats(self) -> str:
        """Failures, calls per second, tokens and dollars so far."""
        rate = self.calls / max(1e-9, self._display.elapsed())
        return f"{self.failures} failed; {rate:.1f} calls/s, {self.tokens:,} tok, ${self.cost:.4f}"


def _in_notebook() -> bool:
    """True in a Jupyter kernel (a subclass of its shell too: Colab's, say)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return any(kind.__name__ == "ZMQInteractiveShell" for kind in type(shell).__mro__)


class _NotebookLine:
    """One line of plain text in a notebook's output, shown on first use and then replaced
    in place (IPython's display ids). No widgets, so nothing asks for ipywidgets, as rich's
    live display does in a notebook."""

    def __init__(self) -> None:
        self._handle: Any = None

    def show(self, text: str) -> None:
        from IPython.display import display

        shown = {"text/plain": text}  # raw: the text itself, not the repr of a str
        if self._handle is None:
            self._handle = display(shown, raw=True, display_id=True)
        else:
            self._handle.update(shown, raw=True)


class ProgressDisplay:
    """All the steps of one run. ``enabled=None``: bars on a terminal, one line in a
    notebook (replaced every ``interval_s``, default 0.5 s), a log line every
    ``interval_s`` (default 10 s) elsewhere; False: nothing."""

    def __init__(
        self,
        *,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        interval_s: float | None = None,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._on = enabled is not False
        in_notebook = self._on and stream is None and _in_notebook()
        default_s = NOTEBOOK_INTERVAL_S if in_notebook else LOG_INTERVAL_S
        self._interval_s = default_s if interval_s is None else interval_s
        self._steps: dict[str, StepProgress] = {}
        self._started = self._shown = time.monotonic()  # a short run prints nothing
        self._said = False
        self._waiting: str | None = None
        self._batches: dict[str, str] = {}  # a provider batch's id: its counts and age
        self._batch_tasks: dict[str, Any] = {}
        self._told_waiting = False  # the last line already said a model was waiting
        self._notebook = _NotebookLine() if in_notebook else None
        self._progress: Any = None
        if self._on and not in_notebook and stream is None and self._stream.isatty():
            self._progress = _rich_progress()

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self._started

    def step(self, name: str) -> StepProgress:
        """The progress of the step called *name* (made on first use)."""
        if name not in self._steps:
            self._steps[name] = StepProgress(self, name)
        return self._steps[name]

    def waiting(self, model: str, until: float | None) -> None:
        """Say that *model* waits out a rate limit until the monotonic time *until*
        (None: it no longer waits)."""
        if until is None:
            self._waiting = None
            return
        wall = datetime.now().timestamp() + (until - time.monotonic())
        clock = datetime.fromtimestamp(wall).strftime("%H:%M:%S")
        self._waiting = f"{model} is rate limited: waiting until {clock}"
        self._show(force=not self._told_waiting)  # once, not a line per retry in a storm

    def batch(self, batch_id: str, summary: str | None) -> None:
        """Show a provider batch's counts and age (None: it ended and was collected)."""
        if summary is None:
            self._batches.pop(batch_id, None)
            task = self._batch_tasks.pop(batch_id, None)
            if task is not None and self._progress is not None:
                self._progress.remove_task(task)
            return
        self._batches[batch_id] = summary
        if self._progress is None:
            self._show()
        elif batch_id in self._batch_tasks:
            self._progress.update(self._batch_tasks[batch_id], stats=summary)
        else:
            task = self._progress.add_task(f"batch {batch_id}", total=None, stats=summary)
            self._batch_tasks[batch_id] = task

    def add_task(self, name: str) -> Any:
        return self._progress.add_task(name, total=0, stats="") if self._progress else None

    def update(self, task: Any, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(task, **fields)
        else:
            self._show()

    def line(self) -> str:
        """Every step's progress on one line, with the time left."""
        parts = [f"{s.name} {s.done}/{s.total} rows, {s.stats()}" for s in self._steps.values()]
        left = self._time_left()
        tail = [f"{self.elapsed():.0f} s elapsed"]
        if left is not None:
            tail.append(f"about {left:.0f} s left")
        if self._waiting:
            tail.append(self._waiting)
        parts += [f"batch {name}: {summary}" for name, summary in self._batches.items()]
        return "progress: " + "; ".join(parts) + "; " + ", ".join(tail)

    def _time_left(self) -> float | None:
        done = sum(s.done for s in self._steps.values())
        total = sum(s.total for s in self._steps.values())
        if not done or total <= done:
            return None
        return self.elapsed() * (total - done) / done

    def _show(self, *, force: bool = False) -> None:
        if not self._on or self._progress is not None:
            return
        now = time.monotonic()
        if not force and now - self._shown < self._interval_s:
            return
        self._shown, self._said = now, True
        self._told_waiting = self._waiting is not None
        if self._notebook is not None:
            self._notebook.show(self.line())
        else:
            print(self.line(), file=self._stream, flush=True)

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self._steps and (self._notebook is not None or self._said):
            self._show(force=True)  # the last word, for a log that showed the run


def _rich_progress() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
