"""Embeddings within a run: rows' texts batched into requests, each one engine call.

:func:`embed_texts` gives one outcome per text, in order, through the run's
:class:`Session`, under the same policy as chat calls:

- the cache first: one entry per text, keyed by a hash of (model, api_base, model
  parameters, dimensions, text), so a re-run makes no request whatever the batches were;
- the texts left go out ``batch_size`` to a request. Texts that rows of the same step ask
  for in the same turn of the event loop share requests, so rows that stream through a
  recipe one at a time are batched too;
- each request holds one of the run's call slots and goes through the engine's
  ``Attempts.send``: the budget is checked and the attempt counted before it is sent, the
  model's rate limiter is held, and transient failures (429 with ``Retry-After``, 5xx,
  timeouts) are retried;
- what a request used is shared among its texts: tokens and dollars in proportion to
  each text's length (the shares add up to the request's exactly), its attempts on its
  first text (so the rows' attempts add up to the run's calls), its latency on each;
- a request that fails fails its texts' rows (a run stopper, or ``on_error="raise"``,
  stops the run), and each row counts towards the session's early stop.

The offline model answers with :func:`~promptflow_dsl._vectors.hashed_embedding` vectors,
as does a dry run (which does not estimate embedding calls).

>>> import asyncio
>>> session = Session(model=Model("mock"))
>>> first, second = asyncio.run(embed_texts(session, "embed", ["Hi there.", "Hi there!"]))
>>> len(first.vector), first.model_name, session.totals["calls"]
(256, 'mock (offline, fabricated)', 1)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import ModelSettingError, PromptflowError
from .._model import Model
from .._schema import canonical_json
from .._vectors import DEFAULT_DIMENSIONS, hashed_embedding
from ._cache import CachedReply
from ._interpreter import Attempts
from ._limits import estimate_tokens
from ._offline import OFFLINE_MODEL_NAME
from ._session import RUN_STOPPERS, RowError, RowFailure, Session
from ._types import EmbeddingReply, Measured, Usage

__all__ = ["Embedded", "embed_texts", "embedding_key"]

DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class Embedded:
    """One text's vector, the model that made it, and the text's share of the usage."""

    vector: list[float]
    model_name: str
    usage: Usage


def embedding_key(text: str, model: Model, dimensions: int | None = None) -> str:
    """The cache key of one text's embedding: never the API key, timeout or batch."""
    request = {
        "kind": "embedding",
        "model": model.name,
        "api_base": model.api_base,
        "params": dict(model.params),
        "dimensions": dimensions,
        "input": text,
    }
    return hashlib.sha256(canonical_json(request).encode()).hexdigest()


async def embed_texts(
    session: Session,
    step: str,
    texts: Sequence[str],
    *,
    model: Model | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dimensions: int | None = None,
    limit: int | None = None,
) -> list[Embedded | RowFailure]:
    """Each text's embedding or why its row failed, in order (see the module's doc).

    *model* defaults to the session's; *limit* caps this step's requests in flight.
    """
    chosen = model or session.model
    if chosen is None:
        message = f"step {step!r} has no model: pass model= to run() or to the step"
        raise ModelSettingError(message)
    bar = session.display.step(step)
    bar.add_total(len(texts))
    batcher = _batcher(session, _Batching(step, chosen, batch_size, dimensions, limit))
    futures = [batcher.submit(text) for text in texts]
    for future in futures:
        future.add_done_callback(lambda done: _tick(bar, done))
    results: list[Embedded | RowFailure] = []
    for outcome in await asyncio.gather(*futures, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome
        results.append(outcome)
    return results


def _tick(bar: Any, done: asyncio.Future[Embedded | RowFailure]) -> None:
    if done.cancelled() or done.exception() is not None:
        return
    outcome = done.result()
    usage = outcome.usage if isinstance(outcome, Embedded) else None
    bar.advance(failed=isinstance(outcome, RowFailure), usage=usage)


@dataclass(frozen=True)
class _Batching:
    """What the requests of one step are made of."""

    step: str
    model: Model
    batch_size: int
    dimensions: int | None
    limit: int | None


_Waiting = tuple[str, "asyncio.Future[Embedded | RowFailure]"]

_batchers: dict[int, dict[_Batching, _Batcher]] = {}


def _batcher(session: Session, batching: _Batching) -> _Batcher:
    """The session's batcher for this step and model (held as long as the session)."""
    mine = _batchers.get(id(session))
    if mine is None:
        mine = _batchers[id(session)] = {}
        weakref.finalize(session, _batchers.pop, id(session), None)
    if batching not in mine:
        mine[batching] = _Batcher(weakref.ref(session), batching)
    return mine[batching]


@dataclass
class _Batcher:
    """Texts waiting for a request, sent ``batch_size`` at a time or at the next turn.

    It holds its session weakly, so a finished run's session (and its batchers) can go.
    """

    session_ref: weakref.ref[Session]
    batching: _Batching
    pending: list[_Waiting] = field(default_factory=list)
    flush_at_next_turn: asyncio.Handle | None = None
    requests: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def session(self) -> Session:
        session = self.session_ref()
        if session is None:  # the callers hold their session while they wait
            message = "the run's session is gone"
            raise RuntimeError(message)
        return session

    def submit(self, text: str) -> asyncio.Future[Embedded | RowFailure]:
        """A future of *text*'s outcome: from the cache now, or from a request soon."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Embedded | RowFailure] = loop.create_future()
        hit = self._cached(text)
        if hit is not None:
            future.set_result(hit)
            return future
        self.pending.append((text, future))
        if len(self.pending) >= self.batching.batch_size:
            self._flush()
        elif self.flush_at_next_turn is None:
            self.flush_at_next_turn = loop.call_soon(self._flush)
        return future

    def _cached(self, text: str) -> Embedded | None:
        session, model = self.session, self.batching.model
        if session.cache is None or model.is_offline or session.rehearsal is not None:
            return None
        started = time.perf_counter()
        hit = session.cache.get(embedding_key(text, model, self.batching.dimensions))
        if hit is None:
            return None
        try:
            vector = _decode(hit.result_json)
        except (ValueError, TypeError, KeyError):
            return None  # a damaged entry: fetch it again
        session.account.hit()
        usage = Usage(
            input_tokens=hit.input_tokens,
            output_tokens=0,
            cost_usd=0.0,
            latency_s=time.perf_counter() - started,
            cache_hit=True,
        )
        return Embedded(vector, hit.model_name, usage)

    def _flush(self) -> None:
        if self.flush_at_next_turn is not None:
            self.flush_at_next_turn.cancel()
            self.flush_at_next_turn = None
        size = self.batching.batch_size
        while self.pending:
            batch, self.pending = self.pending[:size], self.pending[size:]
            task = asyncio.ensure_future(self._send(batch))
            self.requests.add(task)
            task.add_done_callback(self.requests.discard)
            for _, future in batch:
                future.add_done_callback(_abandon_when_unwanted(task, batch))

    async def _send(self, batch: list[_Waiting]) -> None:
        """One request for *batch*, its outcomes handed to the waiting rows."""
        try:
            outcomes = await self._request([text for text, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except BaseException as exc:  # a run stopper, or on_error="raise"
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def _request(self, texts: list[str]) -> list[Embedded | RowFailure]:
        session, batching = self.session, self.batching
        model = batching.model
        started = time.perf_counter()
        chars = sum(len(text) for text in texts)
        attempts = Attempts(
            estimate_tokens(chars, 1),
            model,
            session.retry,
            session.account,
            session.display.waiting,
        )
        try:
            async with session.call_slot(batching.step, batching.limit):
                reply = await self._reply(texts, attempts.send)
        except PromptflowError as exc:
            if session.on_error == "raise" or isinstance(exc, RUN_STOPPERS):
                raise
            shares = _shares(attempts.usage(started), texts)
            failures: list[Embedded | RowFailure] = [
                RowFailure(RowError(batching.step, type(exc).__name__, str(exc), s.attempts), s)
                for s in shares
            ]
            for _ in texts:
                session.check_early_stop(exc)  # the engine's own policy, per row
            return failures
        shares = _shares(attempts.usage(started), texts)
        outcomes: list[Embedded | RowFailure] = []
        for text, vector, share in zip(texts, reply.vectors, shares, strict=True):
            if session.cache is not None and not model.is_offline and session.rehearsal is None:
                key = embedding_key(text, model, batching.dimensions)
                stored = CachedReply(
                    None, _encode(vector), reply.model_name, share.input_tokens, 0, share.cost_usd
                )
                session.cache.put(key, stored)
            outcomes.append(Embedded(vector, reply.model_name, share))
            session.check_early_stop(None)
        return outcomes

    async def _reply(self, texts: list[str], send: Any) -> EmbeddingReply:
        model, dimensions = self.batching.model, self.batching.dimensions
        if model.is_offline or self.session.rehearsal is not None:
            reply: EmbeddingReply = await send(_offline(texts, dimensions), _measure_offline)
            return reply
        from ._providers import embed_batch  # LiteLLM is imported on the first real call

        return await embed_batch(texts, model, send, dimensions=dimensions)


def _abandon_when_unwanted(
    task: asyncio.Task[None], batch: list[_Waiting]
) -> Callable[[asyncio.Future[Embedded | RowFailure]], None]:
    """Cancel a request once every row waiting for it was cancelled (the run stopped)."""

    def check(_: asyncio.Future[Embedded | RowFailure]) -> None:
        if not task.done() and all(future.cancelled() for _, future in batch):
            task.cancel()

    return check


def _offline(texts: list[str], dimensions: int | None) -> Callable[[], Any]:
    """The offline model's request: hashed embeddings, about four characters a token."""

    async def request() -> EmbeddingReply:
        vectors = [hashed_embedding(text, dimensions or DEFAULT_DIMENSIONS) for text in texts]
        tokens = sum(len(text) // 4 + 1 for text in texts)
        return EmbeddingReply(vectors, OFFLINE_MODEL_NAME, Measured(tokens, 0, 0.0, True))

    return request


def _measure_offline(reply: EmbeddingReply) -> Measured:
    return reply.used


def _shares(usage: Usage, texts: list[str]) -> list[Usage]:
    """*usage* shared among *texts* by length: tokens (whole, summing exactly) and dollars
    in proportion, attempts on the first, latency on each.

    >>> [s.input_tokens for s in _shares(Usage(input_tokens=10, attempts=2), ["a", "bbb"])]
    [3, 7]
    """
    weights = [len(text) + 1 for text in texts]
    total = sum(weights)
    tokens = _split(usage.input_tokens, weights)
    return [
        Usage(
            input_tokens=tokens[i] if tokens is not None else None,
            output_tokens=0 if usage.output_tokens is not None else None,
            cost_usd=usage.cost_usd * weights[i] / total if usage.cost_usd is not None else None,
            latency_s=usage.latency_s,
            attempts=usage.attempts if i == 0 else 0,
            tokens_estimated=usage.tokens_estimated,
        )
        for i in range(len(texts))
    ]


def _split(amount: int | None, weights: list[int]) -> list[int] | None:
    """*amount* in whole parts by *weights* (largest remainder), summing to *amount*."""
    if amount is None:
        return None
    total = sum(weights)
    exact = [amount * w / total for w in weights]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: parts[i] - exact[i])
    for i in by_remainder[: amount - sum(parts)]:
        parts[i] += 1
    return parts


def _encode(vector: list[float]) -> str:
    """A vector as the cache stores it: JSON of base64 float32 (a quarter of JSON numbers)."""
    import numpy as np

    packed = np.asarray(vector, dtype="<f4").tobytes()
    return json.dumps({"float32": base64.b64encode(packed).decode()})


def _decode(stored: str) -> list[float]:
    import numpy as np

    packed = base64.b64decode(json.loads(stored)["float32"])
    return [float(x) for x in np.frombuffer(packed, dtype="<f4")]
