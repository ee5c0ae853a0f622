"""Run a coroutine from synchronous code, even inside a running event loop (a notebook).

All sync calls share one long-lived event loop on a daemon thread. A fresh loop per call
(``asyncio.run``) would break LiteLLM's cached HTTP clients, which are bound to the loop
that made them, and ``asyncio.run`` refuses to start inside a running loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

__all__ = ["at_exit", "run_now", "run_sync"]

T = TypeVar("T")
_POLL_S = 0.1
_CANCEL_WAIT_S = 5.0
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _portal_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="promptflow-loop", daemon=True).start()
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run *coro* to completion on the shared loop and return its result.

    >>> async def answer() -> int:
    ...     return 42
    >>> run_sync(answer())
    42
    """
    finished = threading.Event()

    async def guarded() -> T:
        try:
            return await coro
        finally:
            finished.set()

    future = asyncio.run_coroutine_threadsafe(guarded(), _portal_loop())
    try:
        while True:
            try:  # short waits: a blocked wait would not wake for Ctrl-C
                return future.result(timeout=_POLL_S)
            except concurrent.futures.TimeoutError:
                continue
    except BaseException:
        # Ctrl-C in the caller cancels the work on the loop, and waits (briefly) until the
        # calls in flight are cancelled, so none is issued after this returns.
        future.cancel()
        finished.wait(_CANCEL_WAIT_S)
        raise


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run *coro*, which must never wait (a recipe of frame steps), to its end right here.

    No event loop and no thread: the coroutine finishes in its first step.

    >>> async def answer() -> int:
    ...     return 42
    >>> run_now(answer())
    42
    """
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    message = "run_now: the coroutine waited; only a run that calls no model can run here"
    raise RuntimeError(message)


def at_exit(cleanup: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Run *cleanup()* on the shared loop when the interpreter exits (if the loop ran)."""

    def run() -> None:
        if _loop is not None and _loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(cleanup(), _loop).result(timeout=2)

    atexit.register(run)
