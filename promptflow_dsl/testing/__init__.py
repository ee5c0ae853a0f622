"""Testing helpers: a loopback OpenAI-compatible server for real-HTTP tests.

See :mod:`promptflow_dsl.testing._server` for usage; the ``loopback_server`` pytest
fixture is registered automatically when the package is installed.
"""

from promptflow_dsl.testing._server import (
    Faults,
    LoopbackServer,
    RecordedRequest,
    Reply,
    ServerStats,
    default_responder,
)

__all__ = [
    "Faults",
    "LoopbackServer",
    "RecordedRequest",
    "Reply",
    "ServerStats",
    "default_responder",
]
