"""``promptflow show``: a recipe's steps, their columns and models, and a Mermaid graph.

>>> from promptflow_dsl import explode, self_instruct
>>> print(describe_recipe(self_instruct.step() >> explode("instructions", into="instruction")))
... # doctest: +ELLIPSIS
recipe: self_instruct >> explode
input columns: input (read by self_instruct)
...
"""

from __future__ import annotations

from .._recipe._llm_step import TechniqueStep
from .._recipe._overwrites import overwrite_warnings
from .._recipe._recipe import Recipe
from .._recipe._step import BOOKKEEPING_COLUMNS, Step

__all__ = ["describe_recipe"]


def _types(step: Step) -> dict[str, str]:
    if isinstance(step, TechniqueStep):
        bookkeeping = {name: dtype for name, (dtype, _) in BOOKKEEPING_COLUMNS.items()}
        return {**{k: str(v) for k, v in step.output_schema().items()}, **bookkeeping}
    return {}


def describe_recipe(recipe: Recipe) -> str:
    """The steps in order with what each reads and writes, then a Mermaid flowchart."""
    required = ", ".join(f"{c} (read by {s})" for c, s in recipe.required_columns.items())
    lines = [f"recipe: {recipe!r}", f"input columns: {required or '(none)'}", ""]
    for number, step in enumerate(recipe.steps, 1):
        contract, types = step.contract, _types(step)
        model = ""
        if isinstance(step, TechniqueStep):
            model = f"  model: {step.model.name if step.model else '(the run model)'}"
        lines.append(f"{number}. {step.name}{model}")
        reads = sorted(contract.needs) + [f"{c}?" for c in sorted(contract.optional)]
        lines.append(f"   reads:   {', '.join(reads) or '-'}")
        writes = [f"{c}: {types[c]}" if c in types else c for c in contract.adds]
        lines.append(f"   writes:  {', '.join(writes) or '-'}")
        if contract.removes:
            lines.append(f"   removes: {', '.join(sorted(contract.removes))}")
        if contract.keeps_only is not None:
            lines.append(f"   keeps only: {', '.join(contract.keeps_only)}")
    lines += ["", "```mermaid", "flowchart LR", "    input[(input)]"]
    previous = "input"
    for number, step in enumerate(recipe.steps, 1):
        node = f"s{number}"
        shape = (
            f'{node}["{step.name}"]'
            if isinstance(step, TechniqueStep)
            else f'{node}("{step.name}")'
        )
        lines.append(f"    {previous} --> {shape}")
        previous = node
    lines += [f"    {previous} --> output[(output)]", "```"]
    lines += [f"warning: {line}" for line in overwrite_warnings(recipe.steps)]
    return "\n".join(lines)
