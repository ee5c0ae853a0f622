"""SharedAccount: a worker's account, whose budget is the whole run's.

Each entry the worker counts (an attempt sent, what it used, a cache hit) goes to the
run's coordinator as well. Before every attempt, once the model's limits give it a turn,
the worker fetches the run's totals (:meth:`SharedAccount.refresh`), so the budget is
checked against every worker's spending: a cluster run overshoots its budget by at most
the calls in flight on all workers, as one machine overshoots by its own.

>>> class Coordinator:  # what the actor answers, for the example
...     spent = {"cost_usd": 0.02}
...     def totals(self): return dict(self.spent)
...     def add(self, entry): self.spent["cost_usd"] += entry.get("cost_usd", 0)
>>> import asyncio
>>> account = SharedAccount(Coordinator(), max_cost_usd=0.01, call=lambda method, *a: method(*a))
>>> account.totals["cost_usd"], account.exhausted
(0, None)
>>> asyncio.run(account.refresh(fetch=lambda: asyncio.sleep(0, Coordinator.spent)))
>>> account.exhausted  # doctest: +ELLIPSIS
'max_cost_usd=0.01 reached ($0.0200 spent); ...'
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .._engine._account import Account

__all__ = ["SharedAccount"]

Send = Callable[..., Any]
Fetch = Callable[[], Awaitable[Mapping[str, float]]]


def _remote(method: Any, *args: Any) -> Any:
    return method.remote(*args)


class SharedAccount(Account):
    """A worker's totals, with the budget checked against the run's totals.

    ``totals`` stay this worker's own (its session reports them); :attr:`exhausted` reads
    the run's, as last fetched plus what this worker counted since.
    """

    def __init__(
        self, coordinator: Any, *, max_cost_usd: float | None, call: Send = _remote
    ) -> None:
        super().__init__(max_cost_usd=max_cost_usd, sink=self._share)
        self._coordinator = coordinator
        self._call = call
        self._run = Account(max_cost_usd=max_cost_usd)

    def _share(self, entry: dict[str, float]) -> None:
        # Calls from one worker reach the coordinator in the order they were made.
        self._call(self._coordinator.add, entry)
        for key, value in entry.items():
            self._run.totals[key] = self._run.totals.get(key, 0) + value

    async def refresh(self, fetch: Fetch | None = None) -> None:
        """Fetch the run's totals from the coordinator (every worker's calls so far)."""
        totals = await (fetch() if fetch is not None else self._coordinator.totals.remote())
        self._run.totals = dict(totals)

    @property
    def exhausted(self) -> str | None:
        """Why no new call may be issued: the run's budget is spent, by any worker."""
        return self._run.exhausted
