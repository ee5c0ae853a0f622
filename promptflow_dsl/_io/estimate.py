"""``promptflow run --dry-run``: what a run would send and cost, with no call.

The recipe runs on the first rows with every call answered by the offline model, so the
later steps see realistic rows; each program a step would send is recorded. Input
tokens are counted with LiteLLM's token counter for the step's model. Output tokens are
estimated as the call's ``max_tokens`` when it sets one, else 256 per call (a documented
rule of thumb). Both are scaled from the sample to the whole input, and priced with
LiteLLM's price map (unknown where the model has no price). In batch mode a call is
priced at the provider's batch price (LiteLLM's, else half the online price).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .._engine._session import Rehearsal

__all__ = ["StepEstimate", "estimate", "format_estimate"]

OUTPUT_TOKENS_PER_CALL = 256


@dataclass(frozen=True)
class StepEstimate:
    """The estimated calls, tokens and dollars of one step over the whole input."""

    step: str
    model: str
    calls: float
    input_tokens: float
    output_tokens: float
    cost_usd: float | None
    example: str
    batched: bool = False


def estimate(rehearsal: Rehearsal, scale: float, *, batch: bool = False) -> list[StepEstimate]:
    """Scale the rehearsed calls of a sample (``scale`` = all rows / sample rows).

    With *batch* (or a model with ``batch=True``), calls are priced at the batch price.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    from .._engine._providers import batch_price

    estimates = []
    for step, calls in rehearsal.calls.items():
        model = calls[0][0]
        tokens_in = tokens_out = 0
        for _, program in calls:
            rendered: Any = program.render()
            if isinstance(rendered, str):
                tokens_in += litellm.token_counter(model=model.name, text=rendered)
            else:
                tokens_in += litellm.token_counter(model=model.name, messages=rendered)
            limit = model.max_tokens or program.params.get("max_tokens")
            tokens_out += limit or OUTPUT_TOKENS_PER_CALL
        batched = batch or model.batch
        cost: float | None
        if batched:
            cost = batch_price(model.name, round(tokens_in * scale), round(tokens_out * scale))
        else:
            try:
                prompt_cost, completion_cost = litellm.cost_per_token(
                    model=model.name, prompt_tokens=round(tokens_in * scale),
                    completion_tokens=round(tokens_out * scale),
                )  # fmt: skip
                cost = prompt_cost + completion_cost
            except Exception:  # a model missing from the price map
                cost = None
        first = calls[0][1].render()
        example = (
            first
            if isinstance(first, str)
            else "\n".join(f"[{m['role']}] {m['content']}" for m in first)
        )
        estimates.append(
            StepEstimate(
                step,
                model.name,
                len(calls) * scale,
                tokens_in * scale,
                tokens_out * scale,
                cost,
                example,
                batched,
            )  # fmt: skip
        )
    return estimates


def format_estimate(estimates: list[StepEstimate], rows: int, sample: int) -> str:
    """The estimate as the CLI prints it."""
    lines = [f"dry run: {sample} of {rows} rows rehearsed offline, scaled to all {rows}", ""]
    for e in estimates:
        lines += [f"--- {e.step} ({e.model}): first prompt ---", e.example.strip()[:2000], ""]
    header = ("step", "model", "calls", "tokens in", "tokens out", "dollars")
    lines.append("{:24} {:32} {:>9} {:>12} {:>12} {:>10}".format(*header))
    total: float | None = 0.0
    for e in estimates:
        dollars = f"{e.cost_usd:.4f}" if e.cost_usd is not None else "unknown"
        lines.append(
            f"{e.step:24} {e.model:32} {e.calls:9.0f} {e.input_tokens:12.0f} "
            f"{e.output_tokens:12.0f} {dollars:>10}"
        )
        total = None if total is None or e.cost_usd is None else total + e.cost_usd
    shown = f"{total:.4f}" if total is not None else "unknown (a model has no price)"
    lines.append(f"total dollars: {shown}")
    if any(e.batched for e in estimates):
        lines.append(
            "batch mode: priced at the providers' batch prices (LiteLLM's, else half the "
            "online price); answers come within 24 hours"
        )
    return "\n".join(lines)
