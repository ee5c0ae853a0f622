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
from collections.abc import Iterator

__all__ = ["json_object", "json_objects"]

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def json_object(text: str) -> str | None:
    """The first JSON object in *text* (inside a fence if there is one), re-serialised."""
    for candidate in [*(m.group(1) for m in _FENCE.finditer(text)), text]:
        found = _first_object(candidate)
        if found is not None:
            return json.dumps(found, ensure_ascii=False)
    return None


def json_objects(text: str) -> Iterator[dict[str, object]]:
    """Every JSON object that starts at a ``{`` in *text*, in order (nested ones too)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


def _first_object(text: str) -> dict[str, object] | None:
    return next(json_objects(text), None)
