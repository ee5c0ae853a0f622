"""SharedAccount: a worker's account, whose budget is the whole run's.

What the worker counts (an attempt sent, what it used, a cache hit) goes to the run's
coordinator too, which adds up every worker's. With a budget, each entry goes at once, and
before every attempt, once the model's limits give it a turn, the worker fetches the run's
totals (:meth:`SharedAccount.refresh`): the budget is checked against every worker's
spending, so a cluster run overshoots it by at most the calls in flight on all workers, as
one machine overshoots by its own. Without a budget the entries only feed the run's
summary, and go together, a few times a second and at the end of each batch.

>>> import asyncio
>>> class Coordinator:  # the actor's methods, called directly for the example
...     spent: dict = {}
...     def add(self, entry):
...         for key, value in entry.items():
...             self.spent[key] = self.spent.get(key, 0) + value
>>> coordinator = Coordinator()
>>> account = SharedAccount(coordinator, max_cost_usd=0.01, call=lambda method, *a: method(*a))
>>> account.begin(); account.used(cost_usd=0.004)
>>> coordinator.spent["calls"], coordinator.spent["cost_usd"], account.exhausted
(1, 0.004, None)
>>> async def others_spent():  # what refresh() fetches: every worker's totals
...     return {"calls": 3, "cost_usd": 0.012}
>>> asyncio.run(account.refresh(others_spent))
>>> account.exhausted  # doctest: +ELLIPSIS
'max_cost_usd=0.01 reached ($0.0120 spent); ...'
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .._engine._account import Account

__all__ = ["FLUSH_S", "SharedAccount"]

FLUSH_S = 0.2
"""Without a budget, a worker's entries go to the coordinator together this often."""

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
        self._pending: dict[str, float] = {}
        self._flushing: asyncio.TimerHandle | None = None

    def _share(self, entry: dict[str, float]) -> None:
        for key, value in entry.items():
            self._run.totals[key] = self._run.totals.get(key, 0) + value
            self._pending[key] = self._pending.get(key, 0) + value
        if self.max_cost_usd is not None:
            self.flush()
        elif self._flushing is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to wait on: now
                self.flush()
            else:
                self._flushing = loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        """Send what this worker counted since the last time (one message)."""
        if self._flushing is not None:
            self._flushing.cancel()
            self._flushing = None
        if self._pending:
            # Messages from one worker reach the coordinator in the order they were sent.
            self._call(self._coordinator.add, dict(self._pending))
            self._pending.clear()

    async def refresh(self, fetch: Fetch | None = None) -> None:
        """Fetch the run's totals from the coordinator (every worker's calls so far)."""
        totals = await (fetch() if fetch is not None else self._coordinator.totals.remote())
        self._run.totals = dict(totals)

    @property
    def exhausted(self) -> str | None:
        """Why no new call may be issued: the run's budget is spent, by any worker."""
        return self._run.exhausted
