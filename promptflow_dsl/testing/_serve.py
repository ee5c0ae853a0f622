"""Pick an emulator by provider name, and say how to point the library at it.

``promptflow serve`` is built on these two functions; they are public so a test or a
script can do the same.

>>> with make_emulator("anthropic") as server:
...     print(instructions(server)[1].split(" --api-base")[0])
  --model anthropic/claude-3-5-haiku-20241022
"""

from __future__ import annotations

from promptflow_dsl.testing._anthropic import AnthropicEmulator
from promptflow_dsl.testing._base import Emulator, Faults, Latency
from promptflow_dsl.testing._batches import BatchHost
from promptflow_dsl.testing._cohere import CohereEmulator
from promptflow_dsl.testing._gemini import GeminiEmulator
from promptflow_dsl.testing._ollama import OllamaEmulator
from promptflow_dsl.testing._quirks import QUIRKS, Quirks
from promptflow_dsl.testing._server import LoopbackServer

__all__ = ["PROVIDERS", "instructions", "make_emulator"]

_NATIVE: dict[str, type[Emulator]] = {
    "openai": LoopbackServer,
    "anthropic": AnthropicEmulator,
    "ollama": OllamaEmulator,
    "gemini": GeminiEmulator,
    "cohere": CohereEmulator,
}
PROVIDERS = (*_NATIVE, *QUIRKS)
"""The names :func:`make_emulator` takes: five providers, then the OpenAI-compatible quirks."""


def make_emulator(
    provider: str,
    *,
    latency: Latency = 0.0,
    faults: Faults | None = None,
    seed: int = 0,
    port: int = 0,
) -> Emulator:
    """A (not yet started) emulator of *provider*, one of :data:`PROVIDERS`.

    A quirk name gives a :class:`LoopbackServer` with that quirk.
    """
    if provider in QUIRKS:
        quirks = Quirks.named(provider)
        return LoopbackServer(latency, faults, seed, quirks=quirks, port=port)
    if provider not in _NATIVE:
        message = f"no emulator {provider!r}; choose one of {', '.join(PROVIDERS)}"
        raise ValueError(message)
    return _NATIVE[provider](latency, faults, seed, port=port)


def instructions(server: Emulator) -> list[str]:
    """How to run a recipe against a running *server*: the model, the base URL, the key,
    and where its batch API is, if it has one."""
    lines = [
        f"{server.title} emulator at {server.url}",
        f"  --model {server.example_model} --api-base {server.api_base}",
    ]
    if server.key_variable is not None:
        lines.append(f"  any key works: export {server.key_variable}=test-key")
    if isinstance(server, BatchHost):
        lines.append(f"  batch API: {server.batch_endpoints} under {server.url}")
    return lines
