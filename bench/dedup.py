"""ROUGE-L near-duplicate filter: ours against the Self-Instruct reference (``rouge_score``).

The reference does what the paper's bootstrap does: for each candidate, in order, it
scores the candidate against every instruction kept so far with ``rouge_score``'s LCS,
pair by pair, across a process pool; a candidate with a score above 0.7 is dropped.
Both run here on the same instructions; the script checks they make the same decisions
with the same scores (to 1e-9) and prints the speed ratio.

    python bench/dedup.py               # 10,000 instructions, 175 seed-like instructions
    python bench/dedup.py --rows 2000   # quicker

Needs ``rouge-score`` (``pip install rouge-score``).
"""

from __future__ import annotations

import argparse
import random
import time
from functools import partial
from multiprocessing import Pool

import numpy as np

from promptflow_dsl._rouge import judge

VERBS = "write explain list describe compare summarize classify generate create find give suggest".split()
WORDS = (
    "a the an poem story list of three five ten reasons ways steps ideas for about why how what "
    "children students a company the ocean sea river mountain city history science math music "
    "healthy food recipe email letter essay short long simple detailed funny sad new old "
    "with without using in on at to from and or but numbers words sentence paragraph table code "
    "python function sort search tree graph data plan trip budget week day year"
).split()


def instructions(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    made: list[str] = []
    for _ in range(count):
        if made and rng.random() < 0.3:  # a variation of an earlier one: near-duplicates
            words = rng.choice(made).rstrip(".").split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)
        else:
            words = [rng.choice(VERBS)] + [rng.choice(WORDS) for _ in range(rng.randint(4, 14))]
        made.append(" ".join(words).capitalize() + ".")
    return made


def reference(candidates: list[str], seeds: list[str], processes: int) -> list[tuple[bool, float]]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept_tokens = [scorer._tokenizer.tokenize(s) for s in seeds]
    decisions = []
    started = time.perf_counter()
    with Pool(processes) as pool:
        for number, candidate in enumerate(candidates, 1):
            if number % 1000 == 0:
                print(
                    f"  reference: {number:,} candidates in {time.perf_counter() - started:.0f} s",
                    flush=True,
                )
            tokens = scorer._tokenizer.tokenize(candidate)
            scores = [
                s.fmeasure for s in pool.map(partial(rouge_scorer._score_lcs, tokens), kept_tokens)
            ]
            best = max(scores) if scores else 0.0
            decisions.append((best <= 0.7, best))
            if best <= 0.7:
                kept_tokens.append(tokens)
    return decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    seeds, candidates = instructions(175, seed=1), instructions(args.rows, seed=2)

    started = time.perf_counter()
    ours = judge(candidates, seeds, threshold=0.7)
    ours_s = time.perf_counter() - started
    print(f"  dedup_rouge_l: {ours_s:.2f} s", flush=True)

    started = time.perf_counter()
    theirs = reference(candidates, seeds, args.processes)
    theirs_s = time.perf_counter() - started

    same = all(v.kept == kept for v, (kept, _) in zip(ours, theirs, strict=True))
    worst = max(abs(v.max_score - best) for v, (_, best) in zip(ours, theirs, strict=True))
    kept = sum(v.kept for v in ours)
    print(f"{args.rows:,} candidates against {len(seeds)} seeds: {kept:,} kept")
    print(f"  reference (rouge_score, {args.processes} processes): {theirs_s:8.2f} s")
    print(f"  dedup_rouge_l:                               {ours_s:8.2f} s")
    print(
        f"  speed-up: {theirs_s / ours_s:.0f}x; same decisions: {same}; largest score difference: {worst:.1e}"
    )
    if not same or worst > 1e-9:
        raise SystemExit("the two implementations disagree")
    assert np.isfinite(worst)


if __name__ == "__main__":
    main()
