"""Evol-Complexity: make instructions harder, round after round, by in-depth evolution only.

Deita collects instructions of graded complexity this way: it evolves each seed instruction
with Evol-Instruct's four in-depth mutations (add a constraint, deepen the inquiry,
concretize, ask for more reasoning steps) and never with the breadth mutation, which would
make a different instruction rather than a harder one. The original and its evolutions,
five rounds in the paper (``num_evolutions=5, store_evolutions=True,
include_original_instruction=True``), are the variants a complexity ranking compares.

It is ``evol_instruct`` with in-depth templates: the same prompts, seeded choice (from
``seed``, the instruction and the round, never the row's position), elimination evolving
(``eliminate``) and answers (``generate_answers``). It sends evol_instruct's requests, so a
reply cached for either serves the other.

Input column: ``instruction``. Output columns: ``evolved_instruction`` (or
``evolved_instructions``, a list, with ``store_evolutions``; the original first with
``include_original_instruction``), ``answer`` / ``answers`` with ``generate_answers``,
``mutations`` and ``eliminations`` (one entry per round), and ``model_name``.
Reference: Liu et al., *What Makes Good Data for Alignment? A Comprehensive Study of
Automatic Data Selection in Instruction Tuning* (Deita), arXiv 2312.15685 (2023).

>>> evol_complexity.parse("Rewritten Prompt: Sort the list in place, in O(n log n) time.")
EvolvedInstruction(evolved_instruction='Sort the list in place, in O(n log n) time.', \
evolved_instructions=None, answer=None, answers=None, mutations=[], eliminations=[])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import Field

from .._engine._driver import Sequence
from .._technique import technique
from .evol_instruct import MUTATION_TEMPLATES as EVOL_INSTRUCT_TEMPLATES
from .evol_instruct import EvolvedInstruction, evol_instruct, parse_evolved_instruction

__all__ = ["MUTATION_TEMPLATES", "evol_complexity"]

MUTATION_TEMPLATES: dict[str, str] = {
    name: EVOL_INSTRUCT_TEMPLATES[name]
    for name in ("add_constraints", "deepen", "concretize", "increase_reasoning")
}
"""Evol-Instruct's four in-depth mutations; ``{instruction}`` is filled in."""


@technique(
    result=EvolvedInstruction,
    parser=parse_evolved_instruction,
    formatter=evol_instruct.formatter,
    outputs=evol_instruct.output_columns,
)
def evol_complexity(
    instruction: str,
    *,
    num_evolutions: Annotated[int, Field(ge=1)] = 1,
    store_evolutions: bool = False,
    generate_answers: bool = False,
    include_original_instruction: bool = False,
    mutation_templates: Mapping[str, str] = MUTATION_TEMPLATES,
    seed: int = 42,
    eliminate: bool = False,
) -> Sequence:
    """Evolve an instruction into a more complex one, in depth only (Deita's Evol-Complexity)."""
    return (
        yield from evol_instruct.sequence(
            instruction,
            num_evolutions=num_evolutions,
            store_evolutions=store_evolutions,
            generate_answers=generate_answers,
            include_original_instruction=include_original_instruction,
            mutation_templates=mutation_templates,
            seed=seed,
            eliminate=eliminate,
        )
    )
