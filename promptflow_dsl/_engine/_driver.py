"""Drive a technique's sequence of prompt programs: send each result back into it.

A plain technique is a sequence of one program. A multi-call technique (Evol-Instruct's
rounds, say) is written as a generator that yields programs and receives their results,
so sequential logic reads like ordinary Python.

>>> import asyncio
>>> from promptflow_dsl import InstructionList, Message, PromptProgram
>>> from promptflow_dsl._engine._types import Completion, Usage
>>> program = PromptProgram(InstructionList, messages=(Message(role="user", content="A river?"),))
>>> async def answer(p: PromptProgram) -> Completion:
...     return Completion(InstructionList(instructions=["Nile"]), None, "mock", Usage())
>>> def ask_once():
...     result = yield program
...     return result
>>> asyncio.run(drive(start(ask_once()), answer))
InstructionList(instructions=['Nile'])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, NamedTuple

from .._program import PromptProgram
from ._types import Completion, Usage

__all__ = ["Sequence", "Started", "add_usage", "drive", "start"]

Sequence = Generator[PromptProgram[Any], Any, Any]


class Started(NamedTuple):
    """A sequence advanced to its first program, so that program is known before any call
    (to number samples, say) and the technique is built once."""

    first: PromptProgram[Any]
    rest: Sequence


def start(sequence: Sequence) -> Started:
    """Advance *sequence* to the first program it yields."""
    return Started(next(sequence), sequence)


async def drive(
    started: Started, call: Callable[[PromptProgram[Any]], Awaitable[Completion[Any]]]
) -> Any:
    """Run every program the sequence yields through *call*; return the sequence's result.

    A caller that needs the completions (their usage) keeps them in *call*, so it has them
    even when a later call fails.
    """
    program, sequence = started
    try:
        while True:
            completion = await call(program)
            program = sequence.send(completion.result)
    except StopIteration as stop:
        return stop.value
    finally:
        sequence.close()


def add_usage(usages: list[Usage]) -> Usage:
    """The usage of several calls made for one row, added up."""

    def total(name: str) -> Any:
        values = [getattr(u, name) for u in usages]
        return None if any(v is None for v in values) else sum(values)

    return Usage(
        input_tokens=total("input_tokens"),
        output_tokens=total("output_tokens"),
        cost_usd=total("cost_usd"),
        latency_s=sum(u.latency_s for u in usages),
        attempts=sum(u.attempts for u in usages),
        cache_hit=bool(usages) and all(u.cache_hit for u in usages),
        tokens_estimated=any(u.tokens_estimated for u in usages),
    )
