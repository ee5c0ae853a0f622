"""The round of the innermost ``repeat_until``, so seeded steps draw anew each round.

>>> current_round()
0
>>> with in_round(3):
...     current_round()
3
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

__all__ = ["current_round", "in_round"]

_ROUND: contextvars.ContextVar[int] = contextvars.ContextVar("promptflow_round", default=0)


def current_round() -> int:
    """The round being run (0 outside any loop)."""
    return _ROUND.get()


@contextlib.contextmanager
def in_round(number: int) -> Iterator[None]:
    """Run the block as round *number*."""
    token = _ROUND.set(number)
    try:
        yield
    finally:
        _ROUND.reset(token)
