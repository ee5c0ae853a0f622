"""Values the engine passes around: one provider reply, and a completed call with its usage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Completion", "EmbeddingReply", "Measure", "Measured", "Reply", "Usage"]

R = TypeVar("R")
T = TypeVar("T")

Measure = Callable[[T], "Measured"]
"""Reads one provider response's usage."""


@dataclass(frozen=True)
class Reply:
    """What one successful provider call gave back."""

    result: Any
    raw_text: str | None
    model_name: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    via_text: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class Measured:
    """One response's tokens and dollars; ``estimated`` when the server reported no usage
    and LiteLLM's counter stood in; ``counted`` when an earlier run counted this answer
    already (it collected it from the same batch)."""

    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    estimated: bool = False
    counted: bool = False


@dataclass(frozen=True)
class Usage:
    """What one call cost: tokens, dollars (None where the price is unknown), time, tries.

    ``tokens_estimated`` says the tokens (and dollars) were counted here because the
    server did not report them."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float = 0.0
    attempts: int = 0
    cache_hit: bool = False
    tokens_estimated: bool = False


@dataclass(frozen=True)
class Completion(Generic[R]):
    """A validated result, the raw text it came from, the model and the usage."""

    result: R
    raw_text: str | None
    model_name: str
    usage: Usage


@dataclass(frozen=True)
class EmbeddingReply:
    """The vectors of one embedding request, in the order of its texts, and what it used."""

    vectors: list[list[float]]
    model_name: str
    used: Measured
