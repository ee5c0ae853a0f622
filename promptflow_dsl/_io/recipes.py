"""Load a recipe file: a Python module that defines ``recipe``."""

from __future__ import annotations

import runpy
from pathlib import Path

from .._errors import PromptflowError
from .._recipe._recipe import Recipe
from .._recipe._step import Step

__all__ = ["load_recipe"]


def load_recipe(path: str | Path) -> Recipe:
    """Run the recipe file and return its ``recipe`` (a step alone becomes a recipe)."""
    path = Path(path)
    if not path.is_file():
        message = f"recipe file {path} does not exist"
        raise PromptflowError(message)
    namespace = runpy.run_path(str(path), run_name="__promptflow_recipe__")
    recipe = namespace.get("recipe")
    if isinstance(recipe, Step):
        return Recipe((recipe,))
    if not isinstance(recipe, Recipe):
        message = f"{path} must define `recipe = step >> step ...`; found {type(recipe).__name__}"
        raise PromptflowError(message)
    return recipe
