"""Write a file all at once or not at all: a temporary file beside the target, then a rename.

A run that fails halfway (a full disk, a kill) leaves the earlier file at the path as it
was, never a truncated one.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
>>> with replacing(target) as partial:
...     _ = partial.write_text("done")
>>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
('done', ['out.txt'])
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["replacing"]


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside *target* (same suffix) that replaces it if the block succeeds.

    The temporary file or folder is removed if the block fails.
    """
    partial = target.with_name(f".{target.stem}.partial-{os.getpid()}{target.suffix}")
    try:
        yield partial
        if partial.is_dir() and target.is_dir():
            retired = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.replace(retired)  # a folder can't be renamed over a folder: swap, then drop
            partial.replace(target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            partial.replace(target)
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
