"""RunCoordinator: one run's shared state on a cluster, in one Ray actor.

It numbers repeated prompts (:class:`~._numbering.Numbering`), adds up what every worker
spends (the run's totals, against its budget), counts the workers that joined, and makes
one limits actor per model (:class:`~._limits.ModelLimits`), so that every worker draws
on the same limits. The class is plain Python; :func:`start_coordinator` makes it an actor.

>>> coordinator = RunCoordinator(max_cost_usd=0.01)
>>> coordinator.join("worker-a"), coordinator.number("prompt", "worker-a")
(1, 0)
>>> coordinator.add({"calls": 1, "cost_usd": 0.02})
>>> coordinator.totals()["calls"], coordinator.exhausted()  # doctest: +ELLIPSIS
(1, 'max_cost_usd=0.01 reached ($0.0200 spent); ...')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._engine._account import Account
from ._numbering import Numbering

__all__ = ["LimitsKey", "RunCoordinator", "start_coordinator"]

LimitsKey = tuple[str, "str | None", "float | None", "float | None"]
"""A model's limits: its name, API base, rpm and tpm."""


class RunCoordinator:
    """Numbering, spending, workers and model limits of one run, shared by its workers."""

    def __init__(self, max_cost_usd: float | None = None) -> None:
        self._account = Account(max_cost_usd=max_cost_usd)
        self._numbering = Numbering()
        self._joins: dict[str, int] = {}
        self._handles: dict[str, Any] = {}
        self._failure: BaseException | None = None
        self._limits: dict[LimitsKey, Any] = {}

    def join(self, worker: str, handle: Any = None) -> int:
        """Note a worker that starts (its id, and its actor handle); one that joins again
        was restarted, so the sample indices it held go back to be handed out again.
        Returns how many workers joined."""
        if worker in self._joins:
            self._numbering.release(worker)
        self._joins[worker] = self._joins.get(worker, 0) + 1
        self._handles[worker] = handle
        return len(self._joins)

    def workers(self) -> int:
        """How many distinct workers joined the run (a restarted one counts once)."""
        return len(self._joins)

    def worker_handles(self) -> list[Any]:
        """The actor of every worker that joined (to watch or stop one)."""
        return list(self._handles.values())

    def restarts(self) -> int:
        """How many times a worker joined again after it was restarted."""
        return sum(self._joins.values()) - len(self._joins)

    def number(self, prompt_key: str, worker: str) -> int:
        """The sample index of the next occurrence of a prompt, for a row of *worker*."""
        return self._numbering.take(prompt_key, worker)

    def add(self, entry: Mapping[str, float]) -> None:
        """Count what one worker just spent (an entry of its account)."""
        for key, value in entry.items():
            self._account.totals[key] = self._account.totals.get(key, 0) + value

    def totals(self) -> dict[str, float]:
        """The run's calls, cache hits, tokens and dollars so far, over every worker."""
        return dict(self._account.totals)

    def exhausted(self) -> str | None:
        """Why no new call may be issued (the budget is spent), or None."""
        return self._account.exhausted

    def fail(self, error: BaseException) -> None:
        """Keep the first error that stopped a worker (Ray passes on only its text)."""
        if self._failure is None:
            self._failure = error

    def failure(self) -> BaseException | None:
        """The error that stopped the run on a worker, if one did."""
        return self._failure

    def limits_for(self, key: LimitsKey) -> Any:
        """The limits actor of one model (made on first use, owned by this actor)."""
        if key not in self._limits:
            from ._limits import start_model_limits

            _, _, rpm, tpm = key
            self._limits[key] = start_model_limits(rpm, tpm)
        return self._limits[key]


def start_coordinator(max_cost_usd: float | None) -> Any:
    """A :class:`RunCoordinator` actor for one run, on the driver's node, owned by the
    caller (it goes when the last handle does)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(RunCoordinator).options(num_cpus=0, scheduling_strategy=here)
    return actor.remote(max_cost_usd)
