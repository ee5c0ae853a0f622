"""The per-model limits on a virtual clock: what any minute may take."""

import asyncio
import types

import pytest

from promptflow_dsl._engine import _limits
from promptflow_dsl._engine._limits import ModelLimiter

_yield = asyncio.sleep


class Clock:
    """Virtual time: sleeping advances it at once."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    async def sleep(self, seconds):
        self.now += max(0.0, seconds)
        await _yield(0)


@pytest.fixture
def clock(monkeypatch):
    """The limits module sees virtual time; the event loop keeps the real one."""
    clock = Clock()
    monkeypatch.setattr(_limits, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    virtual = types.SimpleNamespace(**{**vars(asyncio), "sleep": clock.sleep})
    monkeypatch.setattr(_limits, "asyncio", virtual)
    return clock


def test_no_minute_takes_more_than_tpm_the_first_one_included(clock):
    tpm, request = 60_000, 700
    starts = []

    async def run():
        limiter = ModelLimiter(tpm=tpm)
        for _ in range(400):
            async with limiter.slot(request) as throttle:
                starts.append(clock.now)
                throttle.used = request

    asyncio.run(run())
    for first in range(len(starts)):
        window = [t for t in starts[first:] if t < starts[first] + 60]
        assert len(window) * request <= tpm, f"{len(window) * request} tokens in a minute"
    assert len([t for t in starts if t < starts[0] + 60]) * request >= 0.85 * tpm  # not starved


def test_rpm_spaces_requests(clock):
    starts = []

    async def run():
        limiter = ModelLimiter(rpm=120)
        for _ in range(10):
            async with limiter.slot(10):
                starts.append(clock.now)

    asyncio.run(run())
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.5 - 1e-9
