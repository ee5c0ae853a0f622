"""``sample_bootstrap_prompts``: the Self-Instruct paper's few-shot sampling, as a step.

The frame is the task pool: rows whose ``origin`` is ``"seed"`` are the human seed tasks,
rows whose ``origin`` is ``"machine"`` were generated. Each prompt takes up to
``machine_per_prompt`` machine instructions and fills the rest of ``per_prompt`` from the
seeds, shuffled. The draws are seeded by ``seed`` and the loop's round, so a resumed run
draws the same prompts again.

>>> import polars as pl
>>> pool = pl.DataFrame({"instruction": [f"Seed task {i}." for i in range(10)], "origin": "seed"})
>>> sample_bootstrap_prompts(3, per_prompt=4).run(pool)["instructions"].list.len().to_list()
[4, 4, 4]
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import PromptflowError
from ._round import current_round
from ._step import Contract, FrameStep

if TYPE_CHECKING:
    import polars as pl

__all__ = ["SampleBootstrapPrompts", "sample_bootstrap_prompts"]


@dataclass(frozen=True, repr=False)
class SampleBootstrapPrompts(FrameStep):
    """Make ``num_prompts`` rows of sampled instructions from the task pool."""

    num_prompts: int
    per_prompt: int
    machine_per_prompt: int
    classification: bool
    seed: int
    name: str = "sample_bootstrap_prompts"
    row_wise = False

    @property
    def contract(self) -> Contract:
        return Contract(
            needs=frozenset({"instruction", "origin"}),
            optional=frozenset({"is_classification"}),
            adds=("instructions", "classification"),
            keeps_only=("instructions", "classification"),
        )

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import polars as pl

        seeds = frame.filter(pl.col("origin") == "seed")
        if self.classification and "is_classification" in frame.columns:
            seeds = seeds.filter(pl.col("is_classification"))
        seed_texts = seeds["instruction"].drop_nulls().to_list()
        machine = frame.filter(pl.col("origin") == "machine")["instruction"].drop_nulls().to_list()
        wanted = self.per_prompt - min(self.machine_per_prompt, len(machine))
        if len(seed_texts) < wanted:
            message = (
                f"step {self.name!r} needs at least {wanted} seed tasks, found {len(seed_texts)}"
            )
            raise PromptflowError(message)
        rng = random.Random(f"{self.seed}:{current_round()}")
        prompts = []
        for _ in range(self.num_prompts):
            chosen = rng.sample(machine, min(self.machine_per_prompt, len(machine)))
            chosen += rng.sample(seed_texts, self.per_prompt - len(chosen))
            rng.shuffle(chosen)
            prompts.append(chosen)
        return pl.DataFrame(
            {"instructions": prompts, "classification": [self.classification] * len(prompts)},
            schema={"instructions": pl.List(pl.String), "classification": pl.Boolean},
        )


def sample_bootstrap_prompts(
    num_prompts: int,
    *,
    per_prompt: int = 8,
    machine_per_prompt: int = 2,
    classification: bool = False,
    seed: int = 42,
) -> SampleBootstrapPrompts:
    """Rows of ``instructions`` to prompt with: the paper's 8 per prompt, up to 2 machine-made."""
    return SampleBootstrapPrompts(num_prompts, per_prompt, machine_per_prompt, classification, seed)
