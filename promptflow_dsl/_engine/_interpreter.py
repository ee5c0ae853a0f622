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

from pydantic import BaseModel

from .._errors import PromptflowError, ProviderError
from .._model import Model
from .._program import PromptProgram
from ._cache import CachedReply, ReplyCache, cache_key
from ._limits import estimate_tokens, limiter_for
from ._offline import call_offline
from ._types import Completion, Reply, Usage

__all__ = ["RetryPolicy", "interpret"]

R = TypeVar("R", bound=BaseModel)


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

    limiter = limiter_for(model.name, model.api_base, model.rpm, model.tpm)
    max_tokens = model.max_tokens or program.params.get("max_tokens")
    estimate = estimate_tokens(len(program.text()), max_tokens)
    await limiter.acquire(estimate)
    used, throttled, retry_after = None, False, None
    try:
        reply = await call_provider(program, model)
        used = (reply.input_tokens or 0) + (reply.output_tokens or 0)
        return reply
    except ProviderError as exc:
        throttled, retry_after = exc.status == 429, exc.retry_after
        raise
    finally:
        await limiter.release(
            estimated=estimate, used=used, throttled=throttled, retry_after=retry_after
        )


def _from_cache(program: PromptProgram[R], hit: CachedReply, started: float) -> Completion[R]:
    if hit.via_text and hit.raw_text is not None:
        # The current parser reads the stored text.
        result = program.parse(hit.raw_text, truncated=hit.truncated)
    else:
        result = program.result_type.model_validate_json(hit.result_json)
    usage = Usage(
        input_tokens=hit.input_tokens,
        output_tokens=hit.output_tokens,
        cost_usd=0.0,
        latency_s=time.perf_counter() - started,
        attempts=0,
        cache_hit=True,
    )
    return Completion(result, hit.raw_text, hit.model_name, usage)


async def interpret(
    program: PromptProgram[R],
    model: Model,
    *,
    cache: ReplyCache | None = None,
    sample: int = 0,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> Completion[R]:
    """Send *program* to *model* and return the validated result with its usage.

    With a *cache*, a stored reply is returned without a call, and a new one is stored.
    *sample* tells apart repeated samples of one prompt.
    """
    started = time.perf_counter()
    if model.is_offline:
        cache = None  # fabricating is cheaper than a lookup
    key = cache_key(program, model, sample) if cache is not None else ""
    hit = cache.get(key) if cache is not None else None
    if hit is not None:
        return _from_cache(program, hit, started)
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
        if cache is not None:
            cache.put(key, _to_cache(reply))
        usage = Usage(
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=reply.cost_usd,
            latency_s=time.perf_counter() - started,
            attempts=attempt,
        )
        return Completion(reply.result, reply.raw_text, reply.model_name, usage)


def _to_cache(reply: Reply) -> CachedReply:
    return CachedReply(
        reply.raw_text,
        reply.result.model_dump_json(),
        reply.model_name,
        reply.input_tokens,
        reply.output_tokens,
        reply.cost_usd,
        via_text=reply.via_text,
        truncated=reply.truncated,
    )
