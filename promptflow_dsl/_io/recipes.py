"""Load a recipe file: a Python module that defines ``recipe``.

The recipe's folder is on ``sys.path`` while the file runs, so a recipe can import a
module that sits beside it (``from qa import extract_qa``), wherever the command is run
from. A file that fails to run is one :class:`RecipeFileError` that names the file, the
line and the reason.
"""

from __future__ import annotations

import runpy
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .._errors import RecipeFileError
from .._recipe._recipe import Recipe
from .._recipe._step import Step

__all__ = ["load_recipe"]


def load_recipe(path: str | Path) -> Recipe:
    """Run the recipe file and return its ``recipe`` (a step alone becomes a recipe)."""
    path = Path(path)
    if not path.is_file():
        message = f"recipe file {path} does not exist"
        raise RecipeFileError(message, path=str(path))
    with _importable_beside(path):
        try:
            namespace = runpy.run_path(str(path), run_name="__promptflow_recipe__")
        except Exception as exc:
            raise _load_failure(path, exc) from exc
    recipe = namespace.get("recipe")
    if isinstance(recipe, Step):
        return Recipe((recipe,))
    if not isinstance(recipe, Recipe):
        message = f"{path} must define `recipe = step >> step ...`; found {type(recipe).__name__}"
        raise RecipeFileError(message, path=str(path))
    return recipe


@contextmanager
def _importable_beside(path: Path) -> Iterator[None]:
    """The recipe's folder first on ``sys.path`` while the recipe runs, then as it was."""
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)  # the first occurrence: the one inserted above


def _load_failure(path: Path, exc: Exception) -> RecipeFileError:
    """One line: the file and line at fault, the exception, and where the traceback is."""
    where, line = _blamed_line(path, exc)
    at = f"{where}:{line}" if line is not None else where
    reason = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ModuleNotFoundError):
        reason += " (modules beside the recipe file are importable; others must be installed)"
    message = (
        f"recipe file {path} failed to load at {at}: {reason}; "
        "fix it, or run promptflow --debug ... for the traceback"
    )
    return RecipeFileError(message, path=str(path), line=line)


def _blamed_line(path: Path, exc: Exception) -> tuple[str, int | None]:
    """The innermost place in the recipe's folder that raised (a syntax error's own line)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return exc.filename, exc.lineno
    folder = path.resolve().parent
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        # "<frozen importlib._bootstrap>" and the like are no files, wherever we run from
        if not frame.filename.startswith("<")
        and Path(frame.filename).resolve().is_relative_to(folder)
    ]
    if not frames:
        return str(path), None
    return frames[-1].filename, frames[-1].lineno
