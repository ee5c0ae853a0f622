"""Quirks of OpenAI-compatible servers seen in the wild, as options of the loopback server.

Self-hosted servers speak the OpenAI format with differences that break clients written
for OpenAI itself. :class:`Quirks` switches them on in :class:`LoopbackServer`:

- ``rejects_tools``: a request with ``tools`` (or a ``tool_choice``) gets an error, as
  llama.cpp's server started without ``--jinja`` answers: ``tools param requires --jinja
  flag`` (and ``Unsupported param: tool_choice``). llama.cpp sends it as a 500
  ``server_error``; vLLM and most proxies refuse tools with a 400, the default here
  (``tools_error_status``).
- ``fenced_json``: the server ignores ``tools`` and ``response_format`` and the model
  answers with the object inside a Markdown ```` ```json ```` fence in the message content.
- ``omits_usage``: replies carry no ``usage`` object.

>>> Quirks(fenced_json=True).names
('fenced-json',)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["QUIRKS", "Quirks"]

_FLAGS = {"rejects-tools": "rejects_tools", "fenced-json": "fenced_json", "no-usage": "omits_usage"}
QUIRKS = tuple(_FLAGS)
"""The quirks by name, as ``promptflow serve --provider`` takes them."""


@dataclass(frozen=True)
class Quirks:
    """Which deviations from the OpenAI API the loopback server shows (none by default)."""

    rejects_tools: bool = False
    tools_error_status: int = 400
    fenced_json: bool = False
    omits_usage: bool = False

    @classmethod
    def named(cls, name: str) -> Quirks:
        """The quirk called *name* (one of :data:`QUIRKS`).

        >>> Quirks.named("no-usage")
        Quirks(rejects_tools=False, tools_error_status=400, fenced_json=False, omits_usage=True)
        """
        if name not in _FLAGS:
            message = f"no quirk {name!r}; the quirks are {', '.join(QUIRKS)}"
            raise ValueError(message)
        return cls(**{_FLAGS[name]: True})

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the quirks switched on."""
        return tuple(name for name, flag in _FLAGS.items() if getattr(self, flag))

    def refusal(self, body: dict[str, Any]) -> str | None:
        """Why a server without tool support refuses *body*, in llama.cpp's words, or None."""
        if not self.rejects_tools:
            return None
        if body.get("tools"):
            return "tools param requires --jinja flag"
        if body.get("tool_choice") is not None:
            return "Unsupported param: tool_choice"
        return None

    def refusal_body(self, message: str) -> dict[str, Any]:
        """llama.cpp's error body for a refused request."""
        status = self.tools_error_status
        kind = "invalid_request_error" if status < 500 else "server_error"
        return {"error": {"code": status, "message": message, "type": kind}}


def fence(value: dict[str, Any]) -> str:
    """*value* as a model that ignores the response format writes it: prose and a fence.

    >>> print(fence({"a": 1}))
    Here is the JSON you asked for:
    ```json
    {
      "a": 1
    }
    ```
    """
    return f"Here is the JSON you asked for:\n```json\n{json.dumps(value, indent=2)}\n```"
