"""Provenance: where an output file came from, stored with it.

Parquet outputs carry it in their key-value metadata (key ``promptflow_dsl``); other
formats (and the Ray engine's folders of shards) get a sidecar ``OUTPUT.meta.json``. It
records the recipe's source and hash, the library and dependency versions, each step with
its technique, attributes and model, the engine that ran it and its number of workers, the
run's totals, and the start and end times. ``promptflow show OUTPUT`` prints it.

The stored source has its credentials masked (:func:`~promptflow_dsl._secrets.redact_source`:
``api_key="..."``, ``OPENAI_API_KEY = "..."``, ``sk-...`` literals, known secrets); the hash
is of the file as written. A record is masked again when read, for files written before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .._recipe._llm_step import TechniqueStep
from .._recipe._recipe import Recipe, RunSummary
from .._secrets import redact_source

__all__ = ["KEY", "LOCAL_ENGINE", "build_provenance", "read_provenance", "sidecar"]

KEY = "promptflow_dsl"
LOCAL_ENGINE = {"name": "local", "workers": 1}
"""The engine of a run on one machine: one process."""
_PACKAGES = ("promptflow_dsl", "litellm", "instructor", "polars", "pydantic", "rapidfuzz")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _plain(value: Any) -> Any:
    """Attributes as JSON: long texts and templates stay whole; other objects by repr."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def _steps(recipe: Recipe, default_model: str) -> list[dict[str, Any]]:
    """Every step in order, the steps inside a loop right after it (``within`` the loop)."""
    from .._recipe._loop import walk

    return [
        _step(step, default_model) | ({"within": within} if within else {})
        for step, within in walk(recipe)
    ]


def _step(step: Any, default_model: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": step.name, "kind": type(step).__name__}
    if isinstance(step, TechniqueStep):
        entry.update(
            technique=step.technique.name,
            attributes=_plain(dict(step.attributes)),
            inputs=dict(step.columns),
            model=step.model.name if step.model else default_model,
        )
    return entry


def build_provenance(
    recipe: Recipe,
    recipe_file: Path,
    model: str,
    summary: RunSummary,
    started: datetime,
    overrides: tuple[str, ...] = (),
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance record of one run (*overrides*: the ``--set`` assignments; *engine*:
    its name and number of workers, one machine's by default)."""
    source = recipe_file.read_text()
    return {
        "recipe": {
            "file": recipe_file.name,
            "sha256": hashlib.sha256(source.encode()).hexdigest(),
            "source": redact_source(source),
            "expression": repr(recipe),
            "overrides": list(overrides),
        },
        "versions": {name: _version(name) for name in _PACKAGES},
        "steps": _steps(recipe, model),
        "engine": dict(engine or LOCAL_ENGINE),
        "totals": dataclasses.asdict(summary),
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
    }


def sidecar(output: Path) -> Path:
    """The ``.meta.json`` file beside a non-Parquet output."""
    return output.with_name(output.name + ".meta.json")


def read_provenance(output: Path) -> dict[str, Any] | None:
    """The provenance stored with an output file, or None."""
    import polars as pl

    if output.suffix.lower() == ".parquet":
        stored = pl.read_parquet_metadata(output).get(KEY)
    else:
        path = sidecar(output)
        stored = path.read_text() if path.exists() else None
    if not stored:
        return None
    record: dict[str, Any] = json.loads(stored)
    recipe = record.get("recipe")
    if isinstance(recipe, dict) and isinstance(recipe.get("source"), str):
        recipe["source"] = redact_source(recipe["source"])
    return record
