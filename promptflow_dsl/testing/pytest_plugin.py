"""pytest fixtures for the loopback server (registered as the ``promptflow_dsl`` plugin).

``loopback_server`` yields a started :class:`~promptflow_dsl.testing.LoopbackServer`
with default settings and stops it after the test. For latency, faults or a responder,
construct ``LoopbackServer(...)`` in the test instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from promptflow_dsl.testing import LoopbackServer

__all__ = ["loopback_server"]


@pytest.fixture
def loopback_server() -> Iterator[LoopbackServer]:
    """A running loopback OpenAI-compatible server, stopped after the test."""
    from promptflow_dsl.testing._server import LoopbackServer

    with LoopbackServer() as server:
        yield server
