"""Per-model limits: requests and tokens per minute, and a concurrency gate that backs off.

Every attempt waits for its model's :class:`ModelLimiter` before it is sent:
- ``rpm``: requests are spaced at least ``60 / rpm`` seconds apart (no bursts);
- ``tpm``: each request reserves its estimated tokens from a bucket that refills at
  ``tpm / 60`` per second and holds at most ten seconds' worth; the estimate is settled
  with the reply's real usage;
- a 429 pauses the model for its ``Retry-After`` (or a short backoff) and halves the calls
  it may have in flight; each success lets one more through again (additive increase,
  multiplicative decrease, as TCP does).

The global in-flight cap (``max_concurrency``) is the executor's; these limits sit under it.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

__all__ = ["ModelLimiter", "estimate_tokens", "limiter_for"]

_DEFAULT_OUTPUT_TOKENS = 256


def estimate_tokens(prompt_chars: int, max_tokens: int | None) -> int:
    """A pre-call estimate: four characters a token in, ``max_tokens`` (or 256) out."""
    return prompt_chars // 4 + 1 + (max_tokens or _DEFAULT_OUTPUT_TOKENS)


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

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def _refill(self, now: float) -> None:
        if self.tpm is None:
            return
        capacity = self.tpm / 6  # ten seconds' worth
        self._tokens = min(capacity, self._tokens + (now - self._refilled) * self.tpm / 60)
        self._refilled = now

    async def acquire(self, tokens: int) -> None:
        """Wait until this model may take one more request of about *tokens* tokens."""
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: self._in_flight < max(1.0, self._window))
            self._in_flight += 1
        while True:
            now = time.monotonic()
            self._refill(now)
            waits = [self._paused_until - now]
            if self.rpm is not None:
                waits.append(self._next_request - now)
            if self.tpm is not None and self._tokens < min(tokens, self.tpm / 6):
                waits.append((min(tokens, self.tpm / 6) - self._tokens) * 60 / self.tpm)
            wait = max(waits)
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        if self.rpm is not None:
            self._next_request = max(now, self._next_request) + 60 / self.rpm
        if self.tpm is not None:
            self._tokens -= tokens

    async def release(
        self, *, estimated: int, used: int | None, throttled: bool, retry_after: float | None
    ) -> None:
        """Return the slot: settle the token estimate, and back off after a 429."""
        if self.tpm is not None and used is not None:
            self._tokens += estimated - used
        if throttled:
            self._paused_until = max(self._paused_until, time.monotonic() + (retry_after or 1.0))
            self._window = max(1.0, min(self._window, self._in_flight) / 2)
        elif self._window != math.inf:
            self._window += 1 / self._window
        changed = self._condition()
        async with changed:
            self._in_flight -= 1
            changed.notify_all()


_limiters: dict[tuple[int, str, str | None, float | None, float | None], ModelLimiter] = {}


def limiter_for(
    name: str, api_base: str | None, rpm: float | None, tpm: float | None
) -> ModelLimiter:
    """The one limiter shared by every call to this model with these limits (per event loop)."""
    key = (id(asyncio.get_running_loop()), name, api_base, rpm, tpm)
    if key not in _limiters:
        _limiters[key] = ModelLimiter(rpm=rpm, tpm=tpm)
    return _limiters[key]
