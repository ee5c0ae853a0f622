"""Numbering: the sample index of each repeated prompt, across every worker of a run.

One machine numbers a prompt's occurrences 0, 1, 2... so that identical prompts are
distinct samples with distinct cache keys. A cluster does the same in one place, with one
more rule for a worker that dies: Ray restarts it and it runs its rows again, so the
indices its rows held are handed out again (lowest first) rather than new ones. Every
reply the cache holds for a prompt is then used again, never paid for twice. The price of
that rule: rows the dead worker had already delivered keep their replies, so after a death
another row with the same prompt may be handed one of their indices, and share its reply.

>>> numbering = Numbering()
>>> numbering.take("p", "worker-a"), numbering.take("p", "worker-b"), numbering.take("q", "w")
(0, 1, 0)
>>> numbering.release("worker-a")  # it died: its rows run again
>>> numbering.take("p", "worker-a"), numbering.take("p", "worker-b")
(0, 2)
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict

__all__ = ["Numbering"]


class Numbering:
    """Sample indices by prompt: the lowest index that no live row holds."""

    def __init__(self) -> None:
        self._next: Counter[str] = Counter()
        self._free: defaultdict[str, list[int]] = defaultdict(list)
        self._held: defaultdict[str, list[tuple[str, int]]] = defaultdict(list)

    def take(self, prompt: str, holder: str) -> int:
        """The index of the next occurrence of *prompt*, held by the worker *holder*."""
        free = self._free.get(prompt)
        if free:
            index = heapq.heappop(free)
        else:
            index = self._next[prompt]
            self._next[prompt] += 1
        self._held[holder].append((prompt, index))
        return index

    def release(self, holder: str) -> None:
        """Give back every index *holder* took: it died, and its rows will run again."""
        for prompt, index in self._held.pop(holder, []):
            heapq.heappush(self._free[prompt], index)
