"""MinHash near-duplicate filter: time and memory on 1,000,000 short instructions, and
precision and recall against exact Jaccard on a 10,000-row sample.

The instructions are made here (seeded): a verb and 4 to 14 words, and 30% of them are
variants of an earlier one (a word changed, added, dropped or swapped with its neighbour,
two such edits, or only case and punctuation changed). The first 10,000 rows are the
sample: a variant always copies an earlier row, so the sample holds both of every pair.

On the sample, the exact similarity of every pair (brute force, 50 million pairs, over
the same character 5-grams) gives the truth: the pairs at or above the threshold, and the
rows a first-come greedy filter drops. The script prints the precision and recall of
LSH's candidate pairs, of the checked pairs, and of the rows ``dedup_minhash`` drops.

    python bench/minhash.py                  # 1,000,000 rows; about 50 s of CPU in all
    python bench/minhash.py --rows 200000    # quicker

Needs ``datasketch`` and ``scipy`` (``pip install 'promptflow_dsl[dedup]'``).
"""

from __future__ import annotations

import argparse
import random
import resource
import time

import numpy as np
import polars as pl
from scipy import sparse

from promptflow_dsl import dedup_minhash
from promptflow_dsl._recipe._minhash import band_keys, shingle_text, shingles

VERBS = (
    "write explain list describe compare summarize classify generate create find give "
    "suggest translate rewrite outline name identify calculate draft plan"
).split()
COMMON = "a the an of for about to in on with and or how why what three five ten".split()


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    """Made-up words of two or three syllables, so texts share few shingles by chance."""
    syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"] + ["ing", "er", "ly"]
    return list(
        dict.fromkeys("".join(rng.choices(syllables, k=rng.randint(2, 3))) for _ in range(size))
    )


def vary(words: list[str], rng: random.Random, vocab: list[str]) -> list[str]:
    """One edit of a word list: change, add, drop or swap a word."""
    words = list(words)
    edit = rng.randrange(4)
    at = rng.randrange(len(words))
    if edit == 0:
        words[at] = rng.choice(vocab)
    elif edit == 1:
        words.insert(at, rng.choice(COMMON))
    elif edit == 2 and len(words) > 3:
        del words[at]
    elif at + 1 < len(words):
        words[at], words[at + 1] = words[at + 1], words[at]
    return words


def instructions(count: int, seed: int, share: float = 0.3) -> tuple[list[str], int]:
    """*count* instructions and how many are variants of an earlier one."""
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    made: list[list[str]] = []
    texts: list[str] = []
    variants = 0
    for _ in range(count):
        if made and rng.random() < share:
            words = made[rng.randrange(len(made))]
            kind = rng.random()
            if kind < 0.2:  # the same words: case and punctuation only
                text = " ".join(words).upper() + "!"
                made.append(words)
                texts.append(text)
                variants += 1
                continue
            words = vary(words, rng, vocab)
            if kind > 0.8:
                words = vary(words, rng, vocab)
            variants += 1
        else:
            words = [rng.choice(VERBS)] + [
                rng.choice(COMMON) if rng.random() < 0.3 else rng.choice(vocab)
                for _ in range(rng.randint(4, 14))
            ]
        made.append(words)
        texts.append(" ".join(words).capitalize() + ".")
    return texts, variants


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def exact_pairs(sets: list[frozenset[str]], threshold: float) -> dict[tuple[int, int], float]:
    """Every pair (i < j) whose exact Jaccard similarity is at least *threshold*."""
    ids: dict[str, int] = {}
    rows, cols = [], []
    for i, s in enumerate(sets):
        for shingle in s:
            rows.append(i)
            cols.append(ids.setdefault(shingle, len(ids)))
    matrix = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(len(sets), len(ids))
    )
    sizes = np.array([len(s) for s in sets])
    found: dict[tuple[int, int], float] = {}
    for start in range(0, len(sets), 1000):
        shared = (matrix[start : start + 1000] @ matrix.T).toarray()  # brute force: all pairs
        union = sizes[start : start + 1000, None] + sizes[None, :] - shared
        jaccard = shared / union
        for i, j in zip(*np.nonzero(jaccard >= threshold), strict=True):
            if start + i < j:
                found[(start + int(i), int(j))] = float(jaccard[i, j])
    return found


def candidate_pairs(keys: np.ndarray) -> set[tuple[int, int]]:
    """Every pair of rows that share a bucket in some band: LSH's candidates."""
    rows = np.repeat(np.arange(keys.shape[0]), keys.shape[1])
    bands = np.tile(np.arange(keys.shape[1]), keys.shape[0])
    table = pl.DataFrame({"row": rows, "band": bands, "key": keys.ravel()})
    joined = table.join(table, on=["band", "key"], suffix="_other").filter(
        pl.col("row") < pl.col("row_other")
    )
    return set(joined.select("row", "row_other").unique().iter_rows())


def greedy(count: int, pairs: dict[tuple[int, int], float]) -> set[int]:
    """The rows a first-come filter drops, with the exact similarities."""
    earlier: dict[int, list[int]] = {}
    for i, j in pairs:
        earlier.setdefault(j, []).append(i)
    dropped: set[int] = set()
    for row in range(count):
        if any(i not in dropped for i in earlier.get(row, ())):
            dropped.add(row)
    return dropped


def ratio(part: int, whole: int) -> str:
    return f"{part / whole:.4f}" if whole else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    texts, variants = instructions(args.rows, args.seed)
    frame = pl.DataFrame({"instruction": texts})
    del texts
    step = dedup_minhash(threshold=args.threshold)
    before = peak_mib()
    started, cpu = time.perf_counter(), time.process_time()
    out = step.run(frame)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"{args.rows:,} rows ({variants:,} made as variants): {out.height:,} kept, "
        f"{args.rows - out.height:,} dropped in {elapsed:.1f} s, {cpu:.1f} s of CPU "
        f"({cpu / args.rows * 1e6:.1f} us a row); peak RSS {peak_mib():,.0f} MiB "
        f"({before:,.0f} MiB before the step)"
    )

    sample = frame.head(args.sample)
    flagged = dedup_minhash(threshold=args.threshold, keep_dropped=True).run(sample)
    normalised = [shingle_text(t, "char") for t in sample["instruction"]]
    sets = [shingles(t, "char", 5) for t in normalised]
    started = time.perf_counter()
    truth = exact_pairs(sets, args.threshold)
    brute = time.perf_counter() - started
    candidates = candidate_pairs(band_keys(normalised, step))
    checked = {
        (i, j)
        for i, j in candidates
        if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= args.threshold
    }
    hits = len(candidates & truth.keys())
    print(
        f"sample of {args.sample:,} rows: {len(truth):,} pairs at Jaccard >= {args.threshold} "
        f"(exact, all {args.sample * (args.sample - 1) // 2:,} pairs in {brute:.1f} s)"
    )
    print(
        f"  LSH candidate pairs: {len(candidates):,}; precision {ratio(hits, len(candidates))}, "
        f"recall {ratio(hits, len(truth))}"
    )
    print(
        f"  checked pairs:       {len(checked):,}; precision "
        f"{ratio(len(checked & truth.keys()), len(checked))}, "
        f"recall {ratio(len(checked & truth.keys()), len(truth))}"
    )
    dropped = set(np.flatnonzero(flagged["duplicate_of"].is_not_null().to_numpy()).tolist())
    expected = greedy(args.sample, truth)
    both = len(dropped & expected)
    print(
        f"  rows dropped: {len(dropped):,} (exact greedy: {len(expected):,}); "
        f"precision {ratio(both, len(dropped))}, recall {ratio(both, len(expected))}"
    )


if __name__ == "__main__":
    main()
