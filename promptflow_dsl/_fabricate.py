"""Fabricate schema-valid values from a JSON schema, deterministically.

Shared by the offline ``mock`` model and the loopback server's default replies. The
values are plausible rather than random noise: strings are short sentences built from
words of a *context* text (usually the prompt), so fabricated data reads like data.

>>> fabricate({"type": "object", "properties": {"n": {"type": "integer"}},
...            "required": ["n"]}, seed=1)
{'n': 2}
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["fabricate", "fabricate_sentence"]

_VERBS = (
    "Explain",
    "Describe",
    "Summarize",
    "Compare",
    "List",
    "Outline",
    "Evaluate",
    "Illustrate",
    "Discuss",
    "Identify",
    "Suggest",
    "Analyze",
    "Classify",
    "Define",
)
_FILLER = ("data", "process", "example", "system", "method", "result", "idea", "topic")
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was"
    " were will with you your what which who how can into about their there than then".split()
)


def _words(context: str) -> list[str]:
    words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'-]{2,}", context)]
    return [w for w in words if w not in _STOP] or list(_FILLER)


def fabricate_sentence(rng: random.Random, context: str = "") -> str:
    """A short imperative sentence made of words from *context*.

    >>> fabricate_sentence(random.Random(0), "Photosynthesis turns light into sugar")
    'Outline sugar photosynthesis light sugar sugar light sugar.'
    """
    words = _words(context)
    body = " ".join(rng.choice(words) for _ in range(rng.randint(4, 7)))
    return f"{rng.choice(_VERBS)} {body}."


def fabricate(
    schema: dict[str, Any],
    *,
    seed: int = 0,
    context: str = "",
    sizes: Mapping[str, int] | None = None,
) -> Any:
    """A value valid against *schema* (objects, arrays, scalars, enums, $defs, anyOf).

    *sizes* fixes the length of top-level list fields, within the schema's bounds.

    >>> lists = {"type": "object", "properties": {"xs": {"type": "array",
    ...          "items": {"type": "integer"}}}}
    >>> len(fabricate(lists, sizes={"xs": 7})["xs"])
    7
    """
    rng = random.Random(seed)
    defs = schema.get("$defs", {})
    value = _value(schema, defs, rng, context)
    for name, size in (sizes or {}).items():
        node = schema.get("properties", {}).get(name, {})
        if isinstance(value, dict) and isinstance(value.get(name), list):
            low, high = node.get("minItems", 0), node.get("maxItems", size)
            count = min(max(size, low), high)
            value[name] = [_value(node.get("items", {}), defs, rng, context) for _ in range(count)]
    return value


def _value(node: dict[str, Any], defs: dict[str, Any], rng: random.Random, ctx: str) -> Any:
    if "$ref" in node:
        return _value(defs[node["$ref"].rsplit("/", 1)[-1]], defs, rng, ctx)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return rng.choice(node["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            options = [o for o in node[key] if o.get("type") != "null"] or node[key]
            return _value(options[0], defs, rng, ctx)
    kind = node.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = node.get("properties", {})
        return {name: _value(sub, defs, rng, ctx) for name, sub in props.items()}
    if kind == "array":
        low = node.get("minItems", 2)
        high = max(low, min(node.get("maxItems", 4), low + 3))
        return [
            _value(node.get("items", {}), defs, rng, ctx) for _ in range(rng.randint(low, high))
        ]
    if kind == "integer":
        return rng.randint(node.get("minimum", 0), node.get("maximum", 9))
    if kind == "number":
        return round(rng.uniform(node.get("minimum", 0.0), node.get("maximum", 1.0)), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return fabricate_sentence(rng, ctx)
