"""Account: what a run has spent, one HTTP attempt at a time, and the budget it may not pass.

Every attempt is counted when it ends, whether it succeeded, failed, was a validation
re-ask or a retry, so the totals agree with what the provider bills. The budget is
checked before every attempt, so a run overshoots it by at most what is in flight.

>>> account = Account(max_cost_usd=0.01)
>>> account.begin()
>>> account.used(input_tokens=100, output_tokens=20, cost_usd=0.004)
>>> account.begin()
>>> account.used(cost_usd=0.007)
>>> account.begin()  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
promptflow_dsl._errors.BudgetExhaustedError: max_cost_usd=0.01 reached ($0.0110 spent); ...
>>> account.totals["calls"], account.totals["input_tokens"]
(2, 100)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .._errors import BudgetExhaustedError

__all__ = ["Account", "SPEND_KEYS"]

SPEND_KEYS = ("calls", "cache_hits", "input_tokens", "output_tokens", "cost_usd")
"""The counters of an account, in the order they are shown."""

Sink = Callable[[dict[str, float]], None]


class Account:
    """Running totals of calls, cache hits, tokens and dollars, with an optional budget.

    *spent* starts the totals from an earlier run's (a resumed run keeps its budget);
    *sink* receives every entry as it is counted (the CLI appends them to a ledger file).
    """

    def __init__(
        self,
        *,
        max_cost_usd: float | None = None,
        spent: Mapping[str, float] | None = None,
        sink: Sink | None = None,
    ) -> None:
        self.max_cost_usd = max_cost_usd
        self.totals: dict[str, float] = dict.fromkeys(SPEND_KEYS, 0)
        for key, value in (spent or {}).items():
            self.totals[key] = self.totals.get(key, 0) + value
        self.sink = sink
        self.held_usd = 0.0  # dollars that requests waiting in batches are expected to cost

    def begin(self, hold_usd: float = 0.0, *, count: bool = True) -> None:
        """Check the budget, then count one HTTP attempt as it is sent.

        An attempt counts from the moment it may reach the provider, so a run that is
        killed or cancelled mid-request still counts what the provider may bill. A request
        that waits hours in a batch first holds its expected cost (*hold_usd*, given back
        by :meth:`release`), so requests gathered at once cannot pass the budget together.
        Such a request is counted (``count=False``, then :meth:`count_call`) by the run that
        collects its answer, once, however many runs waited for it.
        """
        self.check()
        self.held_usd += hold_usd
        if count:
            self.count_call()

    def count_call(self) -> None:
        """Count one HTTP attempt (a request in a batch: when its answer is collected)."""
        self._add({"calls": 1})

    def release(self, hold_usd: float) -> None:
        """Give back what :meth:`begin` held, once the request's real cost is counted."""
        self.held_usd = max(0.0, self.held_usd - hold_usd)

    def used(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """Count what one finished attempt used (None: not reported)."""
        self._add(
            {
                "input_tokens": input_tokens or 0,
                "output_tokens": output_tokens or 0,
                "cost_usd": cost_usd or 0.0,
            }
        )

    def hit(self) -> None:
        """Count one reply served from the cache (no call, no cost)."""
        self._add({"cache_hits": 1})

    def _add(self, entry: dict[str, float]) -> None:
        for key, value in entry.items():
            self.totals[key] = self.totals.get(key, 0) + value
        if self.sink is not None:
            self.sink(entry)

    @property
    def exhausted(self) -> str | None:
        """Why no new call may be issued, or None while the budget lasts."""
        spent = self.totals["cost_usd"]
        if self.max_cost_usd is None or spent + self.held_usd < self.max_cost_usd:
            return None
        held = f", ${self.held_usd:.4f} held by requests in batches" if self.held_usd else ""
        return (
            f"max_cost_usd={self.max_cost_usd} reached (${spent:.4f} spent{held}); "
            "no new calls were issued"
        )

    def check(self) -> None:
        """Raise :class:`BudgetExhaustedError` once the budget is spent."""
        reason = self.exhausted
        if reason is not None:
            raise BudgetExhaustedError(reason)
