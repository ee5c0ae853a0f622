"""The Evol family's shared machinery: the seeded mutation choice, the rounds, elimination.

``evol_instruct``, ``evol_complexity`` and ``evol_quality`` evolve a text round after round.
The mutation of each round comes from :func:`choose_mutation`: random, but fixed by the
seed, the row's own texts and the round, never by the row's position, so a re-run, another
concurrency or another chunking picks the same mutations. :func:`evolve` runs the rounds:
each asks for a rewrite of the current text and, with elimination on, checks it; a rewrite
that fails a rule does not replace the text, and the next round evolves the previous text
again. The checks are built from the predicates here (copied wording, an apology, a text
with no content), which each technique combines into its own rules.

>>> def shout(text, template):  # a rewrite that needs no call: it yields no program
...     return text + "!"
...     yield
>>> def no_repeats(current, evolved):
...     return Verdict("too_loud" if evolved.endswith("!!") else None)
...     yield
>>> try:
...     next(evolve("Hi", ["", "", ""], rewrite=shout, check=no_repeats))
... except StopIteration as done:
...     [(r.text, r.elimination) for r in done.value]
[('Hi!', None), ('Hi!!', 'too_loud'), ('Hi!!', 'too_loud')]
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any, NamedTuple

from .._engine._driver import Sequence
from .._program import PromptProgram

__all__ = [
    "Check",
    "Rewriter",
    "Round",
    "Verdict",
    "choose_mutation",
    "copies_wording",
    "evolve",
    "is_apology",
    "is_empty",
]

_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with i you he she we me my your our ok okay yes "
    "so do does did done just very can could would should".split()
)
_APOLOGY_WORDS = 80
"""A text that says "sorry" in fewer words than this is an apology, not an answer."""


class Verdict(NamedTuple):
    """What a check found: the rule the rewrite failed (or None), and any answer it made."""

    rule: str | None
    answer: str | None = None


class Round(NamedTuple):
    """One round: the rewrite, the rule it failed (or None: kept), and the check's answer."""

    text: str
    elimination: str | None = None
    answer: str | None = None


Rewriter = Callable[[str, str], Generator[PromptProgram[Any], Any, str]]
"""``(current text, mutation template)``: yields the programs of one rewrite, returns it."""
Check = Callable[[str, str], Generator[PromptProgram[Any], Any, Verdict]]
"""``(current text, rewrite)``: yields the programs it needs (maybe none), returns a verdict."""


def choose_mutation(
    templates: Mapping[str, str],
    *,
    seed: int,
    instruction: str,
    round: int,  # noqa: A002
    response: str | None = None,
) -> str:
    """The mutation for one row and round: random, but fixed by the seed and the row's texts.

    A row is its instruction (and, when a response evolves, its response too), so the
    choice never depends on where the row stands in the frame.

    >>> from promptflow_dsl.techniques.evol_instruct import MUTATION_TEMPLATES
    >>> choose_mutation(MUTATION_TEMPLATES, seed=42, instruction="Sort a list.", round=0)
    'add_constraints'
    """
    key = f"{seed}\x1f{round}\x1f{instruction}"
    if response is not None:
        key += f"\x1f{response}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    return random.Random(digest).choice(sorted(templates))


def evolve(
    text: str, templates: Iterable[str], *, rewrite: Rewriter, check: Check | None = None
) -> Sequence:
    """Rewrite *text* once per template in turn; return the :class:`Round` of each.

    Without a *check* every rewrite is kept. With one, a rewrite that fails it is not:
    the next round rewrites the previous text again (elimination evolving).
    """
    current, rounds = text, []
    for template in templates:
        evolved = yield from rewrite(current, template)
        verdict = (yield from check(current, evolved)) if check else Verdict(None)
        rounds.append(Round(evolved, verdict.rule, verdict.answer))
        if verdict.rule is None:
            current = evolved
    return rounds


def copies_wording(text: str, phrases: Iterable[str]) -> bool:
    """Whether *text* holds one of *phrases* (the rewriting prompt's own wording), any case.

    >>> copies_wording("Rewrite the Given Prompt about tides.", ["given prompt"])
    True
    """
    lowered = text.lower()
    return any(phrase in lowered for phrase in phrases)


def is_apology(text: str) -> bool:
    """Whether *text* is a short apology ("sorry" in fewer than 80 words), not an answer.

    >>> is_apology("Sorry, I cannot help with that.")
    True
    """
    return "sorry" in text.lower() and len(text.split()) < _APOLOGY_WORDS


def is_empty(text: str) -> bool:
    """Whether *text* says nothing: no word in it but stop words and punctuation.

    >>> is_empty("... and the, of it!"), is_empty("The moon pulls the sea.")
    (True, False)
    """
    return all(word in _STOP_WORDS for word in re.findall(r"\w+", text.lower()))
