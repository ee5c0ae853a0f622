"""Hugging Face datasets: local ``datasets`` folders, ``hf://`` inputs, dataset cards, pushes.

Everything here needs the ``hf`` extra (``pip install 'promptflow_dsl[hf]'``), imported
only when used. The Hub itself is reached only by :func:`fetch_hub_file`,
:func:`load_hub_dataset` and :func:`push_to_hub`, which stay thin wrappers over the
``datasets`` and ``huggingface_hub`` calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import PromptflowError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "check_hub_repo",
    "dataset_card",
    "fetch_hub_file",
    "hub_parts",
    "load_folder",
    "load_hub_dataset",
    "push_to_hub",
    "require_datasets",
    "save_folder",
]

_INSTALL = "pip install 'promptflow_dsl[hf]'"


def require_datasets() -> Any:
    """The ``datasets`` module, or a clear error naming the extra to install."""
    try:
        import datasets
    except ImportError:
        message = f"Hugging Face datasets need the hf extra: {_INSTALL}"
        raise PromptflowError(message) from None
    datasets.disable_progress_bars()  # our own display is the one progress bar
    return datasets


def load_folder(path: Path) -> pl.DataFrame:
    """The rows of a folder written by ``Dataset.save_to_disk`` (one split)."""
    datasets = require_datasets()
    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        message = f"{path} is not a datasets folder (no state.json or dataset_dict.json in it)"
        raise PromptflowError(message) from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = ", ".join(f"{path}/{name}" for name in loaded)
        message = f"{path} holds several splits; pass one of them: {splits}"
        raise PromptflowError(message)
    return loaded.to_polars()


def save_folder(frame: pl.DataFrame, path: Path) -> None:
    """Write the frame as a ``datasets`` folder (``datasets.load_from_disk`` reads it).

    The folder is written beside and swapped in, so no shard of an earlier dataset stays.
    """
    import shutil

    fresh = path.with_name(f".{path.name}.writing")
    shutil.rmtree(fresh, ignore_errors=True)
    require_datasets().Dataset.from_polars(frame).save_to_disk(str(fresh))
    shutil.rmtree(path, ignore_errors=True)
    fresh.replace(path)


def check_hub_repo(repo: str) -> None:
    """Fail before a run whose push could not work: no hf extra, or not a Hub dataset name."""
    require_datasets()
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        message = f"--push-to-hub {repo!r}: {exc}"
        raise PromptflowError(message) from None
    if "/" not in repo:
        message = f"--push-to-hub {repo!r}: write OWNER/NAME"
        raise PromptflowError(message)


def hub_parts(url: str) -> tuple[str, str]:
    """``hf://datasets/OWNER/NAME[/FILE]`` as (``OWNER/NAME``, ``FILE`` or "").

    >>> hub_parts("hf://datasets/org/data.v2/train/part-0.parquet")
    ('org/data.v2', 'train/part-0.parquet')
    """
    parts = url.removeprefix("hf://").split("/")
    if len(parts) < 3 or parts[0] != "datasets" or not all(parts[1:3]):
        message = f"{url}: write hf://datasets/OWNER/NAME, or hf://datasets/OWNER/NAME/FILE"
        raise PromptflowError(message)
    return f"{parts[1]}/{parts[2]}", "/".join(parts[3:])


def fetch_hub_file(url: str, into: Path) -> Path:
    """Download one data file of a Hub dataset, ``hf://datasets/OWNER/NAME/FILE``."""
    require_datasets()
    from huggingface_hub import HfFileSystem

    from .frames import check_format

    repo, file = hub_parts(url)
    local = into / Path(file).name
    check_format(local)  # an unknown extension fails before the download
    try:
        HfFileSystem().get_file(f"datasets/{repo}/{file}", str(local))
    except Exception as exc:
        message = f"could not download {url}: {exc}"
        raise PromptflowError(message) from None
    return local


def load_hub_dataset(url: str, split: str = "train") -> pl.DataFrame:
    """The *split* of a Hub dataset, ``hf://datasets/OWNER/NAME``, through ``load_dataset``."""
    repo, _ = hub_parts(url)
    datasets = require_datasets()
    try:
        loaded = datasets.load_dataset(repo, split=split)
    except Exception as exc:
        message = f"could not load {url} (split {split!r}): {exc}"
        raise PromptflowError(message) from None
    return loaded.to_polars()


def _size_category(rows: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")]
    bounds += [(1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]
    return next((label for bound, label in bounds if rows < bound), "10M<n<100M")


def dataset_card(provenance: dict[str, Any], *, title: str = "Synthetic instruction data") -> str:
    """A dataset card (README.md) from an output's provenance record.

    It names the recipe (with its source), the models, the techniques with their paper
    references, and the run's totals.

    >>> record = {"recipe": {"file": "r.py", "source": "recipe = ...", "expression": "a >> b"},
    ...           "steps": [{"name": "self_instruct", "technique": "self_instruct",
    ...                      "model": "gpt-4o-mini", "attributes": {}}],
    ...           "totals": {"rows_in": 8, "rows_out": 24, "failures": 0, "calls": 8,
    ...                      "input_tokens": 900, "output_tokens": 700, "cost_usd": 0.01},
    ...           "versions": {"promptflow_dsl": "0.1.0"}}
    >>> card = dataset_card(record)
    >>> "arXiv 2212.10560" in card and "gpt-4o-mini" in card and "n<1K" in card
    True
    """
    from huggingface_hub import DatasetCardData

    from .._reference import TECHNIQUES, paper_reference

    totals = provenance.get("totals", {})
    steps = [s for s in provenance.get("steps", []) if s.get("technique")]
    models = sorted({s["model"] for s in steps if s.get("model")})
    data = DatasetCardData(
        pretty_name=title,
        size_categories=[_size_category(int(totals.get("rows_out", 0)))],
        task_categories=["text-generation"],
        tags=["synthetic", "promptflow_dsl"],
    )
    recipe = provenance.get("recipe", {})
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {title}",
        "",
        f"Generated with promptflow_dsl {provenance.get('versions', {}).get('promptflow_dsl', '')}"
        f" by the recipe `{recipe.get('file', '?')}`: `{recipe.get('expression', '')}`.",
        "",
        *(
            [f"Run with `--set {o}`." for o in recipe.get("overrides", [])] + [""]
            if recipe.get("overrides")
            else []
        ),
        "## Models",
        "",
        *(f"- `{model}`" for model in models),
        *(["- (no model calls)"] if not models else []),
        "",
        "## Techniques",
        "",
    ]
    for step in steps:
        technique = TECHNIQUES.get(step["technique"])
        reference = paper_reference(technique) if technique else None
        summary = technique.summary if technique else ""
        line = f"- **{step['name']}** (`{step['technique']}`, model `{step.get('model')}`)"
        lines.append(line + (f": {summary}" if summary else ""))
        if reference:
            lines.append(f"  Reference: {reference}")
    lines += ["", "## Totals", "", "| | |", "| --- | --- |"]
    for key in ("rows_in", "rows_out", "failures", "calls", "input_tokens", "output_tokens"):
        if key in totals:
            lines.append(f"| {key.replace('_', ' ')} | {int(totals[key]):,} |")
    if "cost_usd" in totals:
        lines.append(f"| cost | ${float(totals['cost_usd']):.4f} |")
    lines += ["", "## Recipe", "", "```python", recipe.get("source", "").rstrip(), "```", ""]
    return "\n".join(lines)


def push_to_hub(frame: pl.DataFrame, repo: str, card: str) -> str:
    """Push the rows and the card to the Hub dataset *repo*; its URL.

    The token comes from ``HF_TOKEN`` or ``huggingface-cli login``, as for any Hub upload.
    The card goes first: ``Dataset.push_to_hub`` keeps an existing README's text and adds
    its own metadata (features, splits) to it.
    """
    datasets = require_datasets()
    from huggingface_hub import DatasetCard, HfApi

    try:
        HfApi().create_repo(repo, repo_type="dataset", exist_ok=True)
        DatasetCard(card).push_to_hub(repo, repo_type="dataset")
        datasets.Dataset.from_polars(frame).push_to_hub(repo)
    except Exception as exc:
        message = f"could not push to the Hub dataset {repo}: {exc}"
        raise PromptflowError(message) from None
    return f"https://huggingface.co/datasets/{repo}"
