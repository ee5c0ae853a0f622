"""Per-model limits: requests and tokens per minute, and a concurrency gate that backs off.

Every attempt waits for its model's :class:`ModelLimiter` before it is sent:
- ``rpm``: requests are spaced at least ``60 / rpm`` seconds apart (no bursts);
- ``tpm``: each request reserves its estimated tokens from a bucket that holds five
  seconds' worth and refills so that no 60 seconds take more than ``tpm``; the estimate is settled
  with the reply's real usage;
- a 429 pauses the model for its ``Retry-After`` (or a short backoff) and halves the calls
  it may have in flight; each success lets one more through again (additive increase,
  multiplicative decrease, as TCP does).

The global in-flight cap (``max_concurrency``) is the executor's; these limits sit under it.
An engine that runs on several machines (Ray) installs its own limiters for an event loop
with :func:`share_limiters`, so that every worker draws on the same limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "LimiterFactory",
    "ModelLimiter",
    "Throttle",
    "estimate_tokens",
    "limiter_for",
    "share_limiters",
]

DEFAULT_OUTPUT_TOKENS = 256


def estimate_tokens(prompt_chars: int, max_tokens: int | None) -> int:
    """A pre-call estimate: four characters a token in, ``max_tokens`` (or 256) out."""
    return prompt_chars // 4 + 1 + (max_tokens or DEFAULT_OUTPUT_TOKENS)


@dataclass
class ModelLimiter:
    """The limits of one model (one model string at one API base)."""

    rpm: float | None = None
    tpm: float | None = None
    _next_request: float = 0.0
    _tokens: float = field(default=math.inf)
    _refilled: float = field(default_factory=time.monotonic)
    _paused_until: float = 0.0
    _window: float = math.inf  # calls this model may have in flight (shrinks on 429s)
    _in_flight: int = 0
    _changed: asyncio.Condition | None = None
    limited_since: float | None = None  # when its 429s began, if it has had no success since

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    @property
    def _burst(self) -> float:
        """The bucket's size: five seconds' worth of ``tpm``."""
        return (self.tpm or 0) / 12

    @property
    def _rate(self) -> float:
        """Tokens per second, so that a full bucket plus a minute's refill is ``tpm``: no
        window of 60 seconds, the first one included, takes more than ``tpm``."""
        return ((self.tpm or 0) - self._burst) / 60

    def _refill(self, now: float) -> None:
        if self.tpm is None:
            return
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now

    @contextlib.asynccontextmanager
    async def slot(self, tokens: int) -> AsyncIterator[Throttle]:
        """Hold one of this model's request slots for one attempt of about *tokens* tokens.

        The slot is taken and given back in one place, so a cancellation at any await
        (while waiting, or during the request) leaves nothing behind.
        """
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: self._in_flight < max(1.0, self._window))
            self._in_flight += 1
        throttle = Throttle()
        reserved = 0
        try:
            await self._wait_turn(tokens)
            reserved = tokens if self.tpm is not None else 0
            yield throttle
        finally:
            self._settle(reserved, throttle)
            async with changed:
                self._in_flight -= 1
                changed.notify_all()

    async def _wait_turn(self, tokens: int) -> None:
        while True:
            now = time.monotonic()
            self._refill(now)
            waits = [self._paused_until - now]
            if self.rpm is not None:
                waits.append(self._next_request - now)
            if self.tpm is not None and self._tokens < min(tokens, self._burst):
                waits.append((min(tokens, self._burst) - self._tokens) / self._rate)
            wait = max(waits)
            if wait <= 1e-6:  # rounding leaves crumbs of a token: never sleep for those
                break
            await asyncio.sleep(wait)
        if self.rpm is not None:
            self._next_request = max(now, self._next_request) + 60 / self.rpm
        if self.tpm is not None:
            self._tokens -= tokens

    def _settle(self, reserved: int, throttle: Throttle) -> None:
        """Settle the token estimate with the real usage, and back off after a 429."""
        if reserved and throttle.used is not None:
            self._tokens += reserved - throttle.used
        if throttle.throttled:
            self.back_off(throttle.retry_after if throttle.retry_after is not None else 1.0)
        elif self._window != math.inf:
            self._window += 1 / self._window

    def back_off(self, pause: float) -> None:
        """Pause the model for *pause* seconds and halve its calls in flight, as a 429 does
        (a cluster engine calls it when a 429 reached another worker)."""
        self._paused_until = max(self._paused_until, time.monotonic() + pause)
        self._window = max(1.0, min(self._window, max(1, self._in_flight)) / 2)


@dataclass
class Throttle:
    """What one attempt tells its limiter: tokens used, or a 429 and its Retry-After."""

    used: int | None = None
    throttled: bool = False
    retry_after: float | None = None


LimiterFactory = Callable[[str, "str | None", "float | None", "float | None"], ModelLimiter]
"""Makes the limiter of a model: ``factory(name, api_base, rpm, tpm)``."""

_limiters: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop,
    dict[tuple[str, str | None, float | None, float | None], ModelLimiter],
] = weakref.WeakKeyDictionary()
_factories: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LimiterFactory] = (
    weakref.WeakKeyDictionary()
)


def _local(name: str, api_base: str | None, rpm: float | None, tpm: float | None) -> ModelLimiter:
    return ModelLimiter(rpm=rpm, tpm=tpm)


def share_limiters(factory: LimiterFactory) -> None:
    """Make the running loop's limiters with *factory* from now on (limiters it made
    before stay): a cluster engine's, whose limiters draw on limits shared by every worker.
    """
    _factories[asyncio.get_running_loop()] = factory


def limiter_for(
    name: str, api_base: str | None, rpm: float | None, tpm: float | None
) -> ModelLimiter:
    """The one limiter shared by every call to this model with these limits (per event loop).

    Limiters are held weakly by their loop: a closed, collected loop takes them along.
    """
    loop = asyncio.get_running_loop()
    mine = _limiters.setdefault(loop, {})
    key = (name, api_base, rpm, tpm)
    if key not in mine:
        mine[key] = _factories.get(loop, _local)(name, api_base, rpm, tpm)
    return mine[key]
