"""``dedup_semantic`` and ``select_diverse``: keep rows apart by their embeddings.

Both walk the rows in an order (the input's, or by a score, best first) and take each row
unless its cosine similarity to a row already taken exceeds a threshold: an exact search
(numpy, block by block; see ``_vectors.greedy_cover``), quick for tens of thousands of
rows. Rows that cannot be judged pass through untouched, where they stood: failed rows
(an ``error``), rows whose embedding is null, and, where a score orders the walk, rows
whose score is null.

>>> import polars as pl
>>> from promptflow_dsl import embed
>>> frame = pl.DataFrame({"instruction": [
...     "Write a poem about the sea.", "Write a poem about the sea!", "Name three rivers."]})
>>> out = (embed() >> dedup_semantic(threshold=0.9)).run(frame, model="mock")
>>> out["instruction"].to_list()
['Write a poem about the sea.', 'Name three rivers.']
>>> out["duplicates"].to_list()[0][0]["row"]
1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import InputError
from .._vectors import greedy_cover
from ._step import Contract, FrameStep

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = ["DedupSemantic", "SelectDiverse", "dedup_semantic", "select_diverse"]

FIRST = "first"


def _duplicates_dtype() -> pl.List:
    import polars as pl

    return pl.List(pl.Struct({"row": pl.Int64, "similarity": pl.Float64}))


def _judged(frame: pl.DataFrame, step: str, embedding: str, score: str | None) -> list[int]:
    """The rows that can be judged: no error, an embedding, and a score if one orders."""
    import polars as pl

    dtype = frame.schema[embedding]
    inner = dtype.inner if isinstance(dtype, (pl.List, pl.Array)) else None
    if inner is None or not inner.is_float():
        message = f"step {step!r}: column {embedding!r} is {dtype}, not a list of floats"
        raise InputError(message)
    ok = pl.col(embedding).is_not_null()
    if "error" in frame.columns:
        ok &= pl.col("error").is_null()
    if score is not None:
        if not frame.schema[score].is_numeric():
            message = (
                f"step {step!r}: score column {score!r} is {frame.schema[score]}, not a number"
            )
            raise InputError(message)
        ok &= pl.col(score).is_not_null() & ~pl.col(score).cast(pl.Float64).is_nan()
    return frame.select(ok.arg_true()).to_series().to_list()


def _matrix(frame: pl.DataFrame, step: str, embedding: str, rows: list[int]) -> np.ndarray:
    """The embeddings of *rows*, one per matrix row; they must all be of one length."""
    import numpy as np
    import polars as pl

    vectors = frame[embedding].gather(rows)
    if not rows:
        return np.zeros((0, 0))
    if isinstance(vectors.dtype, pl.List):
        lengths = vectors.list.len().unique().sort().to_list()
        if len(lengths) > 1:
            message = (
                f"step {step!r}: the embeddings in {embedding!r} are of different lengths "
                f"({', '.join(map(str, lengths))}); embed every row with one model"
            )
            raise InputError(message)
        vectors = vectors.list.to_array(lengths[0])
    return np.asarray(vectors.to_numpy(), dtype=np.float64)


def _by_score(frame: pl.DataFrame, rows: list[int], score: str) -> list[int]:
    """Positions into *rows*, best score first; ties keep the input order."""
    import polars as pl

    values = frame[score].gather(rows).cast(pl.Float64).to_list()
    return sorted(range(len(rows)), key=lambda i: -values[i])  # a stable sort


@dataclass(frozen=True, repr=False)
class DedupSemantic(FrameStep):
    """Drop rows whose embedding is within *threshold* of a row kept before them."""

    column: str
    threshold: float
    keep: str
    keep_dropped: bool
    name: str = "dedup_semantic"
    row_wise = False  # each row is judged against the rows kept before it

    @property
    def contract(self) -> Contract:
        needs = {self.column} | ({self.keep} if self.keep != FIRST else set())
        adds = ("duplicate_of", "duplicate_similarity") if self.keep_dropped else ("duplicates",)
        return Contract(needs=frozenset(needs), adds=adds)

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import polars as pl

        score = None if self.keep == FIRST else self.keep
        rows = _judged(frame, self.name, self.column, score)
        order = _by_score(frame, rows, score) if score else list(range(len(rows)))
        cover = greedy_cover(_matrix(frame, self.name, self.column, rows), order, self.threshold)
        skipped = {rows[i]: (rows[kept], sim) for i, (kept, sim) in cover.skipped.items()}
        if self.keep_dropped:
            return frame.with_columns(
                pl.Series(
                    "duplicate_of",
                    [skipped[i][0] if i in skipped else None for i in range(frame.height)],
                    dtype=pl.Int64,
                ),
                pl.Series(
                    "duplicate_similarity",
                    [skipped[i][1] if i in skipped else None for i in range(frame.height)],
                    dtype=pl.Float64,
                ),
            )
        records: dict[int, list[dict[str, Any]]] = {rows[i]: [] for i in cover.taken}
        for row, (kept, similarity) in sorted(skipped.items()):
            records[kept].append({"row": row, "similarity": similarity})
        column = pl.Series(
            "duplicates", [records.get(i) for i in range(frame.height)], dtype=_duplicates_dtype()
        )
        keep = [i not in skipped for i in range(frame.height)]
        return frame.with_columns(column).filter(pl.Series(keep, dtype=pl.Boolean))


def dedup_semantic(
    column: str = "embedding",
    *,
    threshold: float = 0.95,
    keep: str = FIRST,
    keep_dropped: bool = False,
) -> DedupSemantic:
    """Drop the rows whose embedding (*column*) has a cosine similarity above *threshold*
    to a row kept before them.

    ``keep="first"`` keeps the first occurrence; ``keep=COLUMN`` walks the rows by that
    score, highest first, so each group keeps its best row. Kept rows get ``duplicates``:
    the dropped rows they stood for, each as its position in the step's input (0-based)
    and its similarity, in input order. With ``keep_dropped=True`` no row is dropped; instead
    ``duplicate_of`` names the position of the kept row each duplicate is most similar
    to, and ``duplicate_similarity`` that similarity. Failed rows and rows with a null
    embedding (or score) are never dropped and have null records.
    """
    _check_threshold("dedup_semantic", threshold)
    return DedupSemantic(column, threshold, keep, keep_dropped)


@dataclass(frozen=True, repr=False)
class SelectDiverse(FrameStep):
    """Take up to *k* rows by score, skipping any too close to a row already taken."""

    k: int
    by: str
    embedding: str
    threshold: float
    name: str = "select_diverse"
    row_wise = False  # a row is taken or not depending on the others

    @property
    def contract(self) -> Contract:
        return Contract(needs=frozenset({self.by, self.embedding}), adds=("selection_rank",))

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import polars as pl

        rows = _judged(frame, self.name, self.embedding, self.by)
        order = _by_score(frame, rows, self.by)
        vectors = _matrix(frame, self.name, self.embedding, rows)
        cover = greedy_cover(vectors, order, self.threshold, limit=self.k)
        rank = {rows[i]: n for n, i in enumerate(cover.taken, start=1)}
        judged = set(rows)
        keep = [i in rank or i not in judged for i in range(frame.height)]
        ranks = pl.Series("selection_rank", [rank.get(i) for i in range(frame.height)], pl.Int64)
        return frame.with_columns(ranks).filter(pl.Series(keep, dtype=pl.Boolean))


def select_diverse(
    k: int,
    by: str = "score",
    *,
    embedding: str = "embedding",
    threshold: float = 0.9,
) -> SelectDiverse:
    """Deita's diversity-aware selection: walk the rows by the score *by*, highest first,
    and take each one unless its embedding's cosine similarity to a row already taken
    exceeds *threshold*; stop at *k* rows.

    The rows taken keep their input order and get ``selection_rank`` (1 for the first
    taken). Failed rows and rows with a null embedding or score pass through, with a
    null rank, and do not count towards *k*.

    >>> import polars as pl
    >>> frame = pl.DataFrame({"score": [1.0, 3.0, 2.0],
    ...                       "embedding": [[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]]})
    >>> select_diverse(2).run(frame)["selection_rank"].to_list()
    [2, 1]
    """
    if k < 0:
        message = f"select_diverse(k={k}): k must be at least 0"
        raise ValueError(message)
    _check_threshold("select_diverse", threshold)
    return SelectDiverse(k, by, embedding, threshold)


def _check_threshold(step: str, threshold: float) -> None:
    if not -1.0 <= threshold <= 1.0:
        message = f"{step}(threshold={threshold}): a cosine similarity is from -1 to 1"
        raise ValueError(message)
