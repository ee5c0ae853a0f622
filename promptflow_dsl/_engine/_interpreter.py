"""Run one prompt program against one model: the offline model or a provider, with retries.

Every HTTP attempt goes through one policy, validation re-asks included: the budget is
checked and the attempt counted before it is sent, it holds a slot of the model's limiter,
and transient failures (429, 5xx, timeouts, dropped connections) are retried with
exponential backoff and jitter, honouring ``Retry-After``. Re-asks have their own bound
(``Model.max_validation_retries``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from .._errors import InvalidReplyError, PromptflowError, ProviderError, RunAbortedError
from .._model import Model
from .._program import PromptProgram
from .._schema import json_schema_text
from ._account import Account
from ._cache import CachedReply, ReplyCache, cache_key
from ._limits import (
    DEFAULT_OUTPUT_TOKENS,
    ModelLimiter,
    Throttle,
    estimate_tokens,
    limiter_for,
)
from ._offline import call_offline
from ._types import Completion, Measure, Measured, Reply, Usage

if TYPE_CHECKING:
    from ._batch import BatchClients

__all__ = ["Attempts", "RetryPolicy", "interpret"]

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")
N = TypeVar("N", int, float)
WaitNote = Callable[[str, "float | None"], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried.

    ``max_retry_after_s`` caps the wait a provider asks for (``Retry-After``);
    ``max_rate_limited_s`` stops the run once a model has answered nothing but 429s for
    that long.
    """

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 120.0
    max_rate_limited_s: float = 900.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before the next attempt (full jitter, capped)."""
        if retry_after is not None:
            return self.capped(retry_after)
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))

    def capped(self, retry_after: float) -> float:
        """A provider's requested wait, within ``max_retry_after_s``."""
        return max(0.0, min(self.max_retry_after_s, retry_after))


DEFAULT_RETRY = RetryPolicy()


class Attempts:
    """Every HTTP attempt of one call: budget, limits, transient retries and what it used.

    The provider layer hands each request to :meth:`send`, validation re-asks included,
    so one policy covers them all.
    """

    def __init__(
        self,
        estimate: int,
        model: Model,
        retry: RetryPolicy,
        account: Account,
        on_wait: WaitNote,
        *,
        batched: bool = False,
        hold_usd: float = 0.0,
    ) -> None:
        self.model, self.retry, self.account, self.on_wait = model, retry, account, on_wait
        self.batched = batched  # a batch has no per-minute limits: no limiter slot
        self.hold_usd = hold_usd  # what an attempt holds of the budget while it waits
        self.estimate = estimate  # tokens an attempt reserves of the model's tpm
        self.count = 0
        self.estimated = False
        self.input_tokens: int | None = 0
        self.output_tokens: int | None = 0
        self.cost_usd: float | None = 0.0

    async def send(self, request: Callable[[], Awaitable[T]], measure: Measure[T]) -> T:
        """Send one request, retrying transient failures; count every attempt."""
        model = self.model
        rpm, tpm = (None, None) if self.batched else (model.rpm, model.tpm)
        limiter = limiter_for(model.name, model.api_base, rpm, tpm)
        tries = 0
        while True:
            tries += 1
            async with limiter.slot(self.estimate) as throttle:
                # A request in a batch counts when its answer comes, by the run that collects it.
                self.account.begin(self.hold_usd, count=not self.batched)
                self.count += 1
                try:
                    response = await request()
                except ProviderError as exc:
                    self.account.release(self.hold_usd)
                    if self.batched:
                        self.account.count_call()
                    if exc.status == 429:
                        self._throttled(throttle, exc, limiter)
                    if not exc.transient or tries >= self.retry.max_attempts:
                        raise
                    wait = self.retry.delay(tries, exc.retry_after)
                except BaseException:
                    self.account.release(self.hold_usd)
                    raise
                else:
                    self.account.release(self.hold_usd)
                    measured = measure(response)
                    if self.batched and not measured.counted:
                        self.account.count_call()
                    self._add(measured)
                    throttle.used = (measured.input_tokens or 0) + (measured.output_tokens or 0)
                    if limiter.limited_since is not None:
                        limiter.limited_since = None
                        self.on_wait(model.name, None)
                    return response
            await asyncio.sleep(wait)

    def _throttled(self, throttle: Throttle, error: ProviderError, limiter: ModelLimiter) -> None:
        """Pause the model as the provider asks (capped); stop a run that is only refused."""
        throttle.throttled = True
        pause = self.retry.capped(error.retry_after if error.retry_after is not None else 1.0)
        throttle.retry_after = pause
        now = time.monotonic()
        limiter.limited_since = limiter.limited_since or now
        self.on_wait(self.model.name, now + pause)
        if now - limiter.limited_since > self.retry.max_rate_limited_s:
            message = (
                f"{self.model.name} answered only 429 (rate limited) for "
                f"{now - limiter.limited_since:.0f} s, longer than max_rate_limited_s="
                f"{self.retry.max_rate_limited_s:g}: lower --max-concurrency, set "
                "Model(rpm=..., tpm=...), or run again later to resume"
            )
            raise RunAbortedError(message) from error

    def _add(self, measured: Measured) -> None:
        tokens_in, tokens_out, cost = (
            measured.input_tokens,
            measured.output_tokens,
            measured.cost_usd,
        )
        if not measured.counted:  # not by an earlier run that collected the same answer
            self.account.used(input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost)
        self.input_tokens = _plus(self.input_tokens, tokens_in)
        self.output_tokens = _plus(self.output_tokens, tokens_out)
        self.cost_usd = _plus(self.cost_usd, cost)
        self.estimated = self.estimated or measured.estimated

    def usage(self, started: float) -> Usage:
        """What the attempts so far used, as one call's usage."""
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=self.cost_usd,
            latency_s=time.perf_counter() - started,
            attempts=self.count,
            tokens_estimated=self.estimated,
        )


def _plus(total: N | None, more: N | None) -> N | None:
    """A sum that stays unknown (None) once one part is unknown."""
    return None if total is None or more is None else total + more


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
    key: str | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    account: Account | None = None,
    on_wait: WaitNote | None = None,
    batch: BatchClients | None = None,
) -> Completion[R]:
    """Send *program* to *model* and return the validated result with its usage.

    With a *cache*, a stored reply is returned without a call, and a new one is stored.
    *sample* tells apart repeated samples of one prompt; *key* is its cache key, when the
    caller has computed it already. Every HTTP attempt (retries and
    validation re-asks included) is checked against and counted in *account*. A failure
    carries what its attempts used as ``exc.usage``. *on_wait(model, until)* hears when a
    model waits out a rate limit (until a monotonic time; None when it may go again).
    With *batch*, the requests go to the provider's batch API, named by the cache key.
    """
    started = time.perf_counter()
    account = account if account is not None else Account()
    if model.is_offline:
        cache = None  # fabricating is cheaper than a lookup
    if (cache is not None or batch is not None) and key is None:
        key = cache_key(program, model, sample)
    hit = cache.get(key) if cache is not None and key is not None else None
    if hit is not None:
        try:
            completion = _from_cache(program, hit, started)
        except (ValidationError, InvalidReplyError):
            pass  # a stored reply that no longer reads (damaged, or an older schema): fetch
        else:
            account.hit()
            return completion
    max_tokens = model.max_tokens or program.params.get("max_tokens")
    estimate = estimate_tokens(len(program.text()), max_tokens)
    batched = batch is not None and not model.is_offline
    hold = _batch_hold(program, model, max_tokens) if batched and account.max_cost_usd else 0.0
    attempts = Attempts(
        estimate, model, retry, account, on_wait or _ignore_wait, batched=batched, hold_usd=hold
    )
    try:
        if model.is_offline:
            reply = await attempts.send(_offline(program, model, sample), _measure_reply)
        else:
            from ._providers import call_provider  # LiteLLM is imported on the first real call

            batching = batch if batched else None
            reply = await call_provider(
                program, model, attempts.send, batch=batching, key=key or ""
            )
    except PromptflowError as exc:
        exc.attempts = attempts.count
        exc.usage = attempts.usage(started)
        raise
    if cache is not None and key is not None:
        cache.put(key, _to_cache(reply))
    return Completion(reply.result, reply.raw_text, reply.model_name, attempts.usage(started))


def _batch_hold(program: PromptProgram[Any], model: Model, max_tokens: int | None) -> float:
    """What a batch request is expected to cost: its prompt (and the schema a structured
    call sends with it), and ``max_tokens`` (or 256) out."""
    from ._providers import batch_price

    chars = len(program.text())
    if program.decoding != "text":
        chars += len(json_schema_text(program.result_type))
    tokens_in = chars // 4 + 1
    price = batch_price(model.name, tokens_in, max_tokens or DEFAULT_OUTPUT_TOKENS)
    return price or 0.0


def _ignore_wait(model: str, until: float | None) -> None:
    pass


def _offline(
    program: PromptProgram[Any], model: Model, sample: int
) -> Callable[[], Awaitable[Reply]]:
    async def request() -> Reply:
        return call_offline(program, model, sample)

    return request


def _measure_reply(reply: Reply) -> Measured:
    return Measured(reply.input_tokens, reply.output_tokens, reply.cost_usd, estimated=True)


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
