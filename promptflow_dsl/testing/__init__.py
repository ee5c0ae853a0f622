"""Testing helpers: provider emulators for real-HTTP tests of prompt programs.

:class:`LoopbackServer` speaks the OpenAI API (with optional :class:`Quirks` of
self-hosted servers); :class:`AnthropicEmulator`, :class:`OllamaEmulator`,
:class:`GeminiEmulator` and :class:`CohereEmulator` speak those providers' own wire
formats. All share scripted replies, seeded latency and :class:`Faults`, recording and
counters (:class:`Emulator`). The OpenAI and Anthropic emulators also serve those
providers' batch APIs, run as a :class:`BatchPlan` says and logged as
:class:`SubmittedBatch` records. The ``loopback_server`` pytest fixture is registered
automatically when the package is installed, and ``promptflow serve`` runs any of them
on a port.
"""

from promptflow_dsl.testing._anthropic import AnthropicEmulator
from promptflow_dsl.testing._base import Emulator, Faults, RecordedRequest, Reply, ServerStats
from promptflow_dsl.testing._batches import BatchPlan, SubmittedBatch
from promptflow_dsl.testing._cohere import CohereEmulator
from promptflow_dsl.testing._gemini import GeminiEmulator
from promptflow_dsl.testing._ollama import OllamaEmulator
from promptflow_dsl.testing._quirks import Quirks
from promptflow_dsl.testing._serve import PROVIDERS, instructions, make_emulator
from promptflow_dsl.testing._server import LoopbackServer, default_responder

__all__ = [
    "AnthropicEmulator",
    "BatchPlan",
    "CohereEmulator",
    "Emulator",
    "Faults",
    "GeminiEmulator",
    "LoopbackServer",
    "OllamaEmulator",
    "PROVIDERS",
    "Quirks",
    "RecordedRequest",
    "Reply",
    "ServerStats",
    "SubmittedBatch",
    "default_responder",
    "instructions",
    "make_emulator",
]
