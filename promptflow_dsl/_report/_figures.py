"""The figures of a dataset report, measured from an output frame (no plotting here).

>>> import polars as pl
>>> frame = pl.DataFrame({"instruction": ["Write a haiku.", "What is rain?"],
...                       "generation": ["Soft rain on the roof.", "Water falling."]})
>>> figures = measure(frame)
>>> figures.rows, figures.instruction_column, figures.leading_verbs, figures.questions
(2, 'instruction', [('write', 1)], 1)
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from .._errors import PromptflowError
from .._rouge import nearest_scores

__all__ = [
    "EmbeddingFigures",
    "Example",
    "ReportFigures",
    "ScoreFigures",
    "distinct_n",
    "embedding_figures",
    "leading_word",
    "measure",
    "pick_examples",
    "score_columns",
    "seed_instructions",
]

SCORE_NAMES = ("score", "scores", "rating", "ratings")
"""Judge and scorer columns: these names, or names that end in ``_`` and one of them."""
EMBEDDING_SAMPLE = 1_000
"""Rows of a seeded sample whose embeddings are compared pairwise."""
INSTRUCTION_COLUMNS = ("instruction", "evolved_instruction", "prompt", "user", "question")
RESPONSE_COLUMNS = ("generation", "response", "completion", "assistant", "answer", "output")

_POLITE = re.compile(r"^\W*(?:please\s+|(?:can|could|would|will)\s+you\s+(?:please\s+)?)", re.I)
_WORD = re.compile(r"[a-z][a-z'-]*")
_QUESTION_WORDS = frozenset(
    "what how why who whom whose when where which is are was were do does did can could "
    "should would will shall may might has have".split()
)
_NOT_VERBS = frozenset(
    "the a an i i'm my me we our you your it its this that these those there here in on of for "
    "to as at by if given with from and or but suppose imagine".split()
)


def leading_word(text: str) -> tuple[str, str] | None:
    """The instruction's first word and its kind: ``verb``, ``question`` or ``other``.

    Polite openings ("Please", "Can you") are skipped, so "Can you list..." leads with
    "list". The kind is a word-list rule, not a parser: an imperative instruction's
    first word is its verb.

    >>> leading_word("Please summarise this text."), leading_word("Why is the sky blue?")
    (('summarise', 'verb'), ('why', 'question'))
    """
    found = _WORD.search(_POLITE.sub("", text.strip()).lower())
    if not found:
        return None
    word = found.group()
    if word in _QUESTION_WORDS:
        return word, "question"
    return word, "other" if word in _NOT_VERBS else "verb"


@dataclass(frozen=True)
class Example:
    """One example row: why it was picked (``first``, ``random``, ``longest``), its 1-based
    number, and its texts by name."""

    why: str
    row: int
    texts: tuple[tuple[str, str], ...]


Numbered = tuple[int, dict[str, str]]
"""A candidate example: its 1-based number and its texts by name."""


def pick_examples(rows: Sequence[Numbered], *, seed: int = 0) -> list[Example]:
    """The first row, a random one (the same for the same *seed*) and the longest one.

    A row picked twice is shown once, with both reasons.

    >>> rows = [(1, {"q": "Hi?"}), (2, {"q": "Why is the sky blue?"}), (3, {"q": "No."})]
    >>> [(e.why, e.row) for e in pick_examples(rows, seed=5)]
    [('first', 1), ('random', 3), ('longest', 2)]
    """
    if not rows:
        return []
    picks = {
        "first": 0,
        "random": random.Random(seed).randrange(len(rows)),
        "longest": max(range(len(rows)), key=lambda i: sum(map(len, rows[i][1].values()))),
    }
    reasons: dict[int, list[str]] = {}
    for why, index in picks.items():
        reasons.setdefault(index, []).append(why)
    return [
        Example(", ".join(whys), rows[index][0], tuple(rows[index][1].items()))
        for index, whys in reasons.items()
    ]


_TOKEN = re.compile(r"\w+")


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Distinct n-grams over all n-grams of *texts* (words, lower-cased): distinct-n, as in
    Li et al. (2016). None when the texts have no n-gram.

    >>> distinct_n(["the cat sat", "the cat ran"], 1), distinct_n(["the cat sat"], 2)
    (0.6666666666666666, 1.0)
    """
    grams: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        words = _TOKEN.findall(text.lower())
        grams.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else None


@dataclass
class EmbeddingFigures:
    """How spread out a seeded sample of the embeddings is: the mean cosine distance of
    every pair, and each row's cosine similarity to its nearest other row."""

    column: str
    rows: int
    sample: int
    mean_distance: float
    nearest: list[float] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)


def embedding_column(frame: pl.DataFrame) -> str | None:
    """The frame's embedding column: ``embedding`` if it is one, else the first list of
    floats."""

    def is_vector(dtype: pl.DataType) -> bool:
        return isinstance(dtype, (pl.List, pl.Array)) and dtype.inner.is_float()

    if is_vector(frame.schema.get("embedding", pl.Null())):
        return "embedding"
    return next((name for name, dtype in frame.schema.items() if is_vector(dtype)), None)


def embedding_figures(
    frame: pl.DataFrame, column: str, texts: pl.Series | None, *, seed: int = 0
) -> EmbeddingFigures | None:
    """The figures of a seeded sample of at most :data:`EMBEDDING_SAMPLE` embeddings (of
    one length), with the closest pair and the most isolated row as examples."""
    import numpy as np

    from .._vectors import unit_rows

    present = frame.select(pl.col(column).is_not_null().arg_true()).to_series().to_list()
    vectors = frame[column].gather(present)
    if isinstance(vectors.dtype, pl.List):
        lengths = vectors.list.len()
        common = lengths.mode().sort().to_list()[0] if len(present) else 0
        keep = (lengths == common).to_list()
        present = [row for row, ok in zip(present, keep, strict=True) if ok]
        vectors = vectors.filter(pl.Series(keep, dtype=pl.Boolean)).list.to_array(common)
    if len(present) < 2:
        return None
    chosen = sorted(
        random.Random(seed).sample(range(len(present)), min(EMBEDDING_SAMPLE, len(present)))
    )
    units = unit_rows(np.asarray(vectors.gather(chosen).to_numpy(), dtype=np.float64))
    similarity = np.clip(units @ units.T, -1.0, 1.0)
    pairs = similarity[np.triu_indices(len(chosen), k=1)]
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.max(axis=1)
    rows = [present[i] for i in chosen]
    a, b = np.unravel_index(int(similarity.argmax()), similarity.shape)
    loner = int(nearest.argmin())
    picks = [
        (rows[a], f"closest pair (cosine {similarity[a, b]:.3f})"),
        (rows[b], f"closest pair (cosine {similarity[a, b]:.3f})"),
        (rows[loner], f"most isolated (nearest cosine {nearest[loner]:.3f})"),
    ]
    cells = texts.to_list() if texts is not None else [None] * frame.height
    examples = [
        Example(why, row + 1, (("text", cells[row]),) if isinstance(cells[row], str) else ())
        for row, why in picks
    ]
    return EmbeddingFigures(
        column, len(present), len(chosen), float(1.0 - pairs.mean()), nearest.tolist(), examples
    )


@dataclass
class ScoreFigures:
    """The values of one judge or scorer column (a list column's every item), with the
    rows of its highest and lowest score."""

    column: str
    values: list[float]
    examples: list[Example] = field(default_factory=list)


def score_columns(frame: pl.DataFrame) -> list[str]:
    """Numeric columns (or lists of numbers) named like scores or ratings."""

    def numeric(dtype: pl.DataType) -> bool:
        inner = dtype.inner if isinstance(dtype, (pl.List, pl.Array)) else dtype
        return inner.is_numeric() and inner != pl.Boolean

    names = [
        name
        for name in frame.columns
        if name.lower() in SCORE_NAMES or name.lower().endswith(tuple(f"_{n}" for n in SCORE_NAMES))
    ]
    return [name for name in names if numeric(frame.schema[name])]


def _score_figures(frame: pl.DataFrame, column: str, texts: pl.Series | None) -> ScoreFigures:
    values = frame[column]
    if isinstance(values.dtype, pl.Array):
        values = values.arr.to_list()
    per_row = values.list.mean() if isinstance(values.dtype, pl.List) else values
    flat = values.explode() if isinstance(values.dtype, pl.List) else values
    finite = [float(v) for v in flat.cast(pl.Float64).drop_nulls().drop_nans().to_list()]
    scored = [
        (i, v) for i, v in enumerate(per_row.cast(pl.Float64).to_list()) if v is not None and v == v
    ]
    examples = []
    if scored:
        cells = texts.to_list() if texts is not None else [None] * frame.height
        shown = values.to_list()
        high, low = max(scored, key=lambda s: s[1])[0], min(scored, key=lambda s: s[1])[0]
        picks = [("highest", high), ("lowest", low)] if high != low else [("only", high)]
        for why, row in picks:
            text = (("text", cells[row]),) if isinstance(cells[row], str) else ()
            label = f"{why} {column}" if why != "only" else f"highest and lowest {column}"
            examples.append(Example(label, row + 1, ((column, str(shown[row])), *text)))
    return ScoreFigures(column, finite, examples)


@dataclass
class ReportFigures:
    """What the report shows. Counts are of rows; lengths are in words."""

    rows: int
    failures: int = 0
    failure_types: list[tuple[str, int]] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    cache_hits: int | None = None
    models: list[tuple[str, int]] = field(default_factory=list)
    instruction_column: str | None = None
    response_column: str | None = None
    unique_instructions: int = 0
    instruction_lengths: list[int] = field(default_factory=list)
    response_lengths: list[int] = field(default_factory=list)
    leading_verbs: list[tuple[str, int]] = field(default_factory=list)
    questions: int = 0
    seed_count: int = 0
    seed_similarity: list[float] = field(default_factory=list)
    provenance: dict[str, Any] | None = None
    examples: list[Example] = field(default_factory=list)
    failure_examples: list[Example] = field(default_factory=list)
    verb_examples: list[Example] = field(default_factory=list)
    similarity_examples: list[Example] = field(default_factory=list)
    distinct: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    embeddings: EmbeddingFigures | None = None
    scores: list[ScoreFigures] = field(default_factory=list)


def _pick(frame: pl.DataFrame, wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    if wanted is not None:
        if wanted not in frame.columns:
            message = f"the output has no column {wanted!r}; its columns are {frame.columns}"
            raise PromptflowError(message)
        return wanted
    return next((c for c in candidates if frame.schema.get(c) == pl.String), None)


def _turns(frame: pl.DataFrame, role: str) -> pl.Series | None:
    """The first *role* message of a ``conversation`` column, if the frame has one."""
    dtype = frame.schema.get("conversation")
    if not (isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct)):
        return None
    turns = pl.col("conversation").list.eval(
        pl.element().filter(pl.element().struct.field("role") == role).struct.field("content")
    )
    return frame.select(turns.list.first().alias(role)).to_series()


def _numbered(columns: dict[str, pl.Series | None]) -> list[Numbered]:
    """The rows with a text in any of *columns*, numbered from 1, with those texts."""
    present = {name: series.to_list() for name, series in columns.items() if series is not None}
    if not present:
        return []
    rows = [
        (number, {name: cells[number - 1] for name, cells in present.items()})
        for number in range(1, len(next(iter(present.values()))) + 1)
    ]
    texts = [(n, {k: v for k, v in row.items() if isinstance(v, str) and v}) for n, row in rows]
    return [(n, row) for n, row in texts if row]


def _failures(frame: pl.DataFrame) -> list[Numbered]:
    """The failed rows, numbered from 1, with the step, type and message of their error."""
    if not isinstance(frame.schema.get("error"), pl.Struct):
        return []
    error = frame["error"].struct
    names = [name for name in ("step", "type", "message", "raw_reply") if name in error.fields]
    return _numbered({name: error.field(name) for name in names})


def _texts(series: pl.Series | None) -> list[str]:
    return [] if series is None else [t for t in series.to_list() if isinstance(t, str) and t]


def seed_instructions(frame: pl.DataFrame, source: object) -> list[str]:
    """The instructions of a seed-task frame read from *source*; a clear error without any."""
    column = _pick(frame, None, INSTRUCTION_COLUMNS)
    if column is None:
        message = (
            f"{source} has no instruction column ({', '.join(INSTRUCTION_COLUMNS)}); "
            f"its columns are {frame.columns}"
        )
        raise PromptflowError(message)
    return _texts(frame[column])


def measure(
    frame: pl.DataFrame,
    *,
    provenance: dict[str, Any] | None = None,
    seeds: list[str] | None = None,
    instruction_column: str | None = None,
    response_column: str | None = None,
    top_verbs: int = 20,
    example_seed: int = 0,
) -> ReportFigures:
    """Measure an output frame: totals, lengths, leading verbs and similarity to *seeds*,
    with example rows for each (*example_seed* picks the random one)."""
    figures = ReportFigures(rows=frame.height, provenance=provenance)
    if "error" in frame.columns:
        errors = frame["error"].drop_nulls()
        figures.failures = errors.len()
        if errors.len() and isinstance(errors.dtype, pl.Struct):
            types = Counter(errors.struct.field("type").fill_null("?").to_list())
            figures.failure_types = types.most_common()
    if isinstance(frame.schema.get("usage"), pl.Struct):
        usage = frame["usage"].struct.unnest()
        figures.input_tokens = int(usage["input_tokens"].sum())
        figures.output_tokens = int(usage["output_tokens"].sum())
        figures.cost_usd = float(usage["cost_usd"].sum())
        figures.cache_hits = int(usage["cache_hit"].sum())
    if "model_name" in frame.columns:
        figures.models = Counter(frame["model_name"].fill_null("(failed)").to_list()).most_common()

    figures.failure_examples = pick_examples(_failures(frame), seed=example_seed)

    figures.instruction_column = _pick(frame, instruction_column, INSTRUCTION_COLUMNS)
    figures.response_column = _pick(frame, response_column, RESPONSE_COLUMNS)
    instruction_series = (
        frame[figures.instruction_column] if figures.instruction_column else _turns(frame, "user")
    )
    response_series = (
        frame[figures.response_column] if figures.response_column else _turns(frame, "assistant")
    )
    instructions = _texts(instruction_series)
    responses = _texts(response_series)
    if not figures.instruction_column and instructions:
        figures.instruction_column = "conversation (first user turn)"
    if not figures.response_column and responses:
        figures.response_column = "conversation (first assistant turn)"
    pairs = {"instruction": instruction_series, "response": response_series}
    figures.examples = pick_examples(_numbered(pairs), seed=example_seed)
    first_rows: dict[str, int] = {}  # each distinct instruction's first row number
    for number, row in _numbered({"instruction": instruction_series}):
        first_rows.setdefault(row["instruction"], number)
    unique = list(first_rows)
    figures.unique_instructions = len(unique)
    figures.instruction_lengths = [len(t.split()) for t in instructions]
    figures.response_lengths = [len(t.split()) for t in responses]
    kinds = [w for w in map(leading_word, unique) if w is not None]
    figures.leading_verbs = Counter(w for w, k in kinds if k == "verb").most_common(top_verbs)
    figures.questions = sum(1 for _, k in kinds if k == "question")
    if figures.leading_verbs:
        top = figures.leading_verbs[0][0]
        led = [(first_rows[t], {"instruction": t}) for t in unique if _leads(t, top)]
        figures.verb_examples = pick_examples(led, seed=example_seed)
    for label, texts in (
        (figures.instruction_column, instructions),
        (figures.response_column, responses),
    ):
        if label and texts:
            figures.distinct.append((label, distinct_n(texts, 1), distinct_n(texts, 2)))
    vectors = embedding_column(frame)
    if vectors is not None:
        figures.embeddings = embedding_figures(
            frame, vectors, instruction_series, seed=example_seed
        )
    figures.scores = [_score_figures(frame, c, instruction_series) for c in score_columns(frame)]
    if seeds:
        figures.seed_count = len(seeds)
        figures.seed_similarity = nearest_scores(unique, seeds)
        scored = [
            (first_rows[text], {"instruction": text, "ROUGE-L to the nearest seed": f"{score:.3f}"})
            for text, score in zip(unique, figures.seed_similarity, strict=True)
        ]
        figures.similarity_examples = pick_examples(scored, seed=example_seed)
    return figures


def _leads(text: str, verb: str) -> bool:
    found = leading_word(text)
    return found is not None and found[0] == verb
