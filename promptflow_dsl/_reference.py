"""Reference pages for the techniques, generated from the code so they never drift.

``promptflow techniques NAME`` prints one; ``promptflow docs DIR`` writes them all, and a
test fails when the pages in ``docs/reference/`` are stale.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

from ._recipe._step import BOOKKEEPING_COLUMNS
from ._technique import Technique

__all__ = [
    "TECHNIQUES",
    "paper_reference",
    "render_index",
    "render_reference",
    "write_reference",
]


def _techniques() -> dict[str, Technique[Any]]:
    from . import techniques

    return {
        name: getattr(techniques, name) for name in sorted(techniques.__all__) if name.islower()
    }


TECHNIQUES = _techniques()
"""Every technique the library ships, by name."""


def paper_reference(technique: Technique[Any]) -> str | None:
    """The paper (or model) a technique follows, from its module's ``Reference:`` line."""
    import re

    doc = sys.modules[technique._build.__module__].__doc__ or ""
    found = re.search(r"References?: (.+?)(?:\n\n|$)", doc, re.DOTALL)
    return " ".join(found.group(1).split()) if found else None


_DECODING = {
    "raw": "Sends a raw completion prompt (the text-completion endpoint) and reads the reply "
    "with its text parser; a structured `Model(mode=...)` sends it as one chat message.",
    "sequence": "Makes several calls, one program after another (see the prose above).",
    "structured": 'Decodes with Instructor by default (structured); `Model(mode="text")` '
    "uses the text parser.",
    "text": "Decodes with its text parser by default; a structured `Model(mode=...)` uses "
    "Instructor.",
}


def _kind(technique: Technique[Any]) -> str:
    if technique.is_sequence:
        return "sequence"
    if technique.signature.return_annotation in (str, "str"):
        return "raw"
    return technique.decoding


def _default(value: Any) -> str:
    if isinstance(value, dict):
        return f"{len(value)} entries: " + ", ".join(f"`{k}`" for k in value)
    text = repr(value)
    return f"`{text}`" if len(text) <= 40 else "see below"


def _signature(technique: Technique[Any]) -> str:
    params, star = [], False
    for p in technique.signature.parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        if p.kind is p.VAR_KEYWORD:
            params.append(f"**{p.name}")
            continue
        text = f"{p.name}: {p.annotation}".replace("'", "")
        if p.default is not p.empty:
            shown = repr(p.default) if len(repr(p.default)) <= 40 else p.name.upper()
            text += f" = {shown}"
        params.append(text)
    lines = ",\n".join(f"    {p}" for p in params)
    returns = technique.result_type.__name__
    return f"{technique.name}(\n{lines},\n) -> {returns}"


def _prompt(technique: Technique[Any]) -> str:
    kinds = technique.input_types
    placeholders = [  # a list input gets a list of one placeholder, not a string to iterate
        [f"{{{name}}}"] if typing.get_origin(kinds.get(name)) is list else f"{{{name}}}"
        for name in technique.inputs
        if name not in technique.optional_inputs
    ]
    rendered = technique.render(*placeholders)
    if isinstance(rendered, str):
        return "```text\n" + rendered + "\n```"
    return "\n\n".join(f"**{m['role']}**\n\n```text\n{m['content']}\n```" for m in rendered)


def _module_doc(technique: Technique[Any]) -> str:
    return inspect.getdoc(sys.modules[technique.__module__]) or ""


def render_reference(technique: Technique[Any]) -> str:
    """The Markdown reference page of one technique."""
    from ._recipe._llm_step import TechniqueStep
    from ._schema import polars_schema

    doc = _module_doc(technique)
    prose, _, example = doc.partition("\n>>>")
    step = TechniqueStep.build(technique, model=None, inputs={}, attributes={})
    schema = polars_schema(technique.result_type)
    fields = technique.result_type.model_fields
    lines = [f"# `{technique.name}`", "", prose.strip(), ""]
    lines += ["## Signature", "", "```python", _signature(technique), "```", ""]
    lines += [f"Returns `{technique.result_type.__name__}`. {_DECODING[_kind(technique)]}", ""]
    if technique.attributes:
        lines += ["## Attributes", "", "| attribute | default |", "| --- | --- |"]
        lines += [
            f"| `{name}` | {_default(value)} |" for name, value in technique.attributes.items()
        ]
        lines.append("")
    lines += [
        "## Columns",
        "",
        "| column | direction | type | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name in technique.inputs:
        kind = "input (optional)" if name in technique.optional_inputs else "input"
        lines.append(f"| `{name}` | {kind} | String | |")
    for name in step.contract.adds:
        if name in BOOKKEEPING_COLUMNS:
            dtype, meaning = BOOKKEEPING_COLUMNS[name]
        else:
            dtype, meaning = str(schema[name]), fields[name].description or ""
        lines.append(f"| `{name}` | output | {dtype} | {meaning} |")
    lines.append("")
    lines += [
        f"## Result type: `{technique.result_type.__name__}`",
        "",
        "| field | type | description |",
        "| --- | --- | --- |",
    ]
    for name, info in fields.items():
        lines.append(f"| `{name}` | {schema[name]} | {info.description or ''} |")
    lines.append("")
    lines += [
        "## Prompt",
        "",
        "Rendered with placeholders for the inputs and the default attributes:",
        "",
    ]
    lines += [_prompt(technique), ""]
    if example.strip():
        body = textwrap.dedent(">>>" + example).strip()
        lines += ["## Example", "", "```python", body, "```", ""]
    lines += [
        "## In a recipe",
        "",
        "```python",
        f"from promptflow_dsl import {technique.name}",
        "",
        f"step = {technique.name}.step()  # attributes as keywords; inputs={{...}} maps columns",
        "```",
        "",
    ]
    long_defaults = [(n, v) for n, v in technique.attributes.items() if len(repr(v)) > 40]
    for name, value in long_defaults:
        texts = value.items() if isinstance(value, dict) else [(None, value)]
        lines += [f"### Default `{name}`", ""]
        for key, text in texts:
            lines += [f"`{key}`:", ""] if key else []
            lines += ["```text", str(text), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def render_index() -> str:
    """The index page: one line per technique."""
    lines = ["# Technique reference", "", "| technique | what it does |", "| --- | --- |"]
    lines += [f"| [`{name}`]({name}.md) | {t.summary} |" for name, t in TECHNIQUES.items()]
    return "\n".join(lines) + "\n"


def write_reference(folder: str | Path) -> list[Path]:
    """Write every page into *folder*; return the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pages = {"index.md": render_index()}
    pages.update({f"{name}.md": render_reference(t) for name, t in TECHNIQUES.items()})
    for name, text in pages.items():
        (folder / name).write_text(text)
    return [folder / name for name in pages]
