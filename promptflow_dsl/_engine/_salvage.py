"""Find the JSON object in a reply that wrapped it: a ```json fence, or prose around it.

A server that ignores a forced tool or a response format still often answers with the
right object in its text. Taking it from there saves a re-ask, which costs a call.

>>> json_object('Sure! ```json\\n{"instructions": ["Explain tides."]}\\n``` Hope it helps.')
'{"instructions": ["Explain tides."]}'
>>> json_object("no object here") is None
True
"""

from __future__ import annotations

import json
import re

__all__ = ["json_object"]

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def json_object(text: str) -> str | None:
    """The first JSON object in *text* (inside a fence if there is one), re-serialised."""
    for candidate in [*(m.group(1) for m in _FENCE.finditer(text)), text]:
        found = _first_object(candidate)
        if found is not None:
            return json.dumps(found, ensure_ascii=False)
    return None


def _first_object(text: str) -> dict[str, object] | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None
