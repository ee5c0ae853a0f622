"""``embed``: a text column's embeddings, through any LiteLLM embedding model.

The step reads one text column and writes its vectors as a ``List(Float32)`` column,
with ``model_name``, ``usage`` and ``error`` as a technique step writes them: a row whose
request failed keeps its inputs, gets a null vector and says why; a row that an earlier
step failed is skipped and keeps that error. The calls go through the run's session (see
``_engine/_embeddings.py``): cached per text, batched, budgeted, rate limited and retried.

Embedding models are not chat models, so the step takes its own ``model``; without one it
runs only where the run's model is the offline ``"mock"``, whose vectors are hashed
character trigrams (near-duplicate texts get near vectors, with no network).

>>> import polars as pl
>>> frame = pl.DataFrame({"instruction": ["Write a poem.", "Write a poem!", None]})
>>> out = embed().run(frame, model="mock")
>>> out["embedding"].list.len().to_list(), out["error"].struct.field("type").to_list()
([256, 256, None], [None, None, 'MissingInput'])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._engine._embeddings import DEFAULT_BATCH_SIZE, Embedded, embed_texts
from .._engine._session import RowError, RowFailure, Session
from .._errors import ModelSettingError
from .._model import Model
from ._llm_step import error_dtype, usage_dtype
from ._step import BOOKKEEPING_COLUMNS, Contract, Step

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Embed", "embed"]

_TRAILING = tuple(BOOKKEEPING_COLUMNS)
_MAX_BATCH = 2048  # OpenAI's limit on inputs per request


@dataclass(frozen=True, repr=False)
class Embed(Step):
    """A text column's embeddings. Build it with :func:`embed`."""

    column: str
    into: str
    model: Model | None
    batch_size: int
    dimensions: int | None
    max_concurrency: int | None = None
    name: str = "embed"
    calls_models = True

    def limited(self, max_concurrency: int | None) -> Embed:
        """The same step with its own cap on requests in flight (None: the run's)."""
        return dataclasses.replace(self, max_concurrency=max_concurrency)

    @property
    def contract(self) -> Contract:
        return Contract(needs=frozenset({self.column}), adds=(self.into, *_TRAILING))

    def chosen_model(self, session: Session) -> Model:
        """The step's model; else the run's, if that is the offline model."""
        if self.model is not None:
            return self.model
        if session.model is not None and session.model.is_offline:
            return session.model
        run = repr(session.model.name) if session.model else "not set"
        message = (
            f"step {self.name!r} needs an embedding model: pass one, e.g. "
            "embed(model='openai/text-embedding-3-small'); the run's model stands in only "
            f"when it is the offline 'mock', and it is {run}"
        )
        raise ModelSettingError(message)

    async def apply(self, frame: pl.DataFrame, session: Session) -> pl.DataFrame:
        """Rows → texts → ``embed_texts`` → columns."""
        import polars as pl

        earlier = frame["error"].to_list() if "error" in frame.columns else [None] * frame.height
        values = frame[self.column].to_list()
        rows = [self._text(v, error) for v, error in zip(values, earlier, strict=True)]
        model = self.chosen_model(session) if any(isinstance(r, str) for r in rows) else None
        texts = [r for r in rows if isinstance(r, str)]
        done = iter(
            await embed_texts(
                session,
                self.name,
                texts,
                model=model,
                batch_size=self.batch_size,
                dimensions=self.dimensions,
                limit=self.max_concurrency,
            )
            if texts
            else []
        )
        outcomes = [next(done) if isinstance(r, str) else r for r in rows]
        out = frame.with_columns(self._columns(outcomes, earlier, frame))
        return out.select(pl.exclude(_TRAILING), *_TRAILING)  # bookkeeping columns go last

    def _text(self, value: Any, error: Any) -> str | RowFailure | None:
        """The row's text; None for a row an earlier step failed; else why it has none."""
        if error is not None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # numbers are read as their text, as technique inputs are
        if isinstance(value, str) and value.strip():
            return value
        if value is None or isinstance(value, str):
            kind, why = "MissingInput", "null" if value is None else "empty"
        else:
            kind, why = "InputTypeError", f"a {type(value).__name__}, not text"
        reason = f"input column {self.column!r} is {why}"
        return RowFailure(RowError(self.name, kind, reason))

    def _columns(
        self, outcomes: list[Embedded | RowFailure | None], earlier: list[Any], frame: pl.DataFrame
    ) -> list[pl.Series]:
        import polars as pl

        done = [o if isinstance(o, Embedded) else None for o in outcomes]
        spent = [o.usage if o is not None else None for o in outcomes]
        errors = [
            vars(o.error) if isinstance(o, RowFailure) else earlier[i]
            for i, o in enumerate(outcomes)
        ]
        notes = frame["notes"] if "notes" in frame.columns else [None] * frame.height
        return [
            pl.Series(self.into, [d.vector if d else None for d in done], pl.List(pl.Float32)),
            pl.Series("model_name", [d.model_name if d else None for d in done], dtype=pl.String),
            pl.Series("usage", [vars(u) if u else None for u in spent], dtype=usage_dtype()),
            pl.Series("error", errors, dtype=error_dtype()),
            pl.Series("notes", notes, dtype=pl.List(pl.String)),
        ]


def embed(
    column: str = "instruction",
    *,
    into: str = "embedding",
    model: str | Model | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dimensions: int | None = None,
    max_concurrency: int | None = None,
) -> Embed:
    """Embed *column* into *into* (``List(Float32)``) with an embedding *model*.

    *model* is any LiteLLM embedding model (``"openai/text-embedding-3-small"``, a
    ``Model`` with ``api_base`` for a self-hosted server); without one, the step runs
    only with the offline model. *batch_size* texts go in one request (at most 2048);
    *dimensions* asks for shorter vectors where the model can give them;
    *max_concurrency* caps this step's requests in flight below the run's.
    """
    if not 1 <= batch_size <= _MAX_BATCH:
        message = f"embed(batch_size={batch_size}): it must be from 1 to {_MAX_BATCH}"
        raise ValueError(message)
    if dimensions is not None and dimensions < 1:
        message = f"embed(dimensions={dimensions}): it must be at least 1"
        raise ValueError(message)
    chosen = Model.coerce(model) if model is not None else None
    return Embed(column, into, chosen, batch_size, dimensions, max_concurrency)
