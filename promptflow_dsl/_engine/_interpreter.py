"""Run one prompt program against one model: the offline model or a provider, with retries.

Transient provider failures (429, 5xx, timeouts, dropped connections) are retried with
exponential backoff and jitter, honouring ``Retry-After``. Validation re-asks happen
inside the provider call and have their own bound (``Model.max_validation_retries``).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any, TypeVar

from .._errors import PromptflowError, ProviderError
from .._model import Model
from .._program import PromptProgram
from ._offline import call_offline
from ._types import Completion, Reply, Usage

__all__ = ["RetryPolicy", "interpret"]

R = TypeVar("R")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried."""

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before the next attempt (full jitter, capped)."""
        if retry_after is not None:
            return min(self.max_delay_s, retry_after)
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


DEFAULT_RETRY = RetryPolicy()


async def _call_once(program: PromptProgram[Any], model: Model) -> Reply:
    if model.is_offline:
        return call_offline(program, model)
    from ._providers import call_provider  # LiteLLM is imported on the first real call

    return await call_provider(program, model)


async def interpret(
    program: PromptProgram[R], model: Model, *, retry: RetryPolicy = DEFAULT_RETRY
) -> Completion[R]:
    """Send *program* to *model* and return the validated result with its usage."""
    started = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        try:
            reply = await _call_once(program, model)
        except ProviderError as exc:
            if exc.transient and attempt < retry.max_attempts:
                await asyncio.sleep(retry.delay(attempt, exc.retry_after))
                continue
            exc.attempts = attempt
            raise
        except PromptflowError as exc:
            exc.attempts = attempt
            raise
        usage = Usage(
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=reply.cost_usd,
            latency_s=time.perf_counter() - started,
            attempts=attempt,
        )
        return Completion(reply.result, reply.raw_text, reply.model_name, usage)
