"""The offline model (``model="mock"``): schema-valid results with no network and no key.

Results are fabricated from the result type's JSON schema, seeded by a hash of the prompt,
so the same prompt always gives the same result. When the technique has a text formatter
and parser, the fabricated result goes through both, so the text path is exercised too.
Every row it produces says so in ``model_name``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .._fabricate import fabricate
from .._model import Model
from .._program import PromptProgram
from .._schema import json_schema
from ._types import Reply

__all__ = ["OFFLINE_MODEL_NAME", "call_offline"]

OFFLINE_MODEL_NAME = "mock (offline, fabricated)"


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def call_offline(program: PromptProgram[Any], model: Model, sample: int = 0) -> Reply:
    """Fabricate a result for the program, as a call to a real model would return it.

    Another *sample* of the same prompt is another fabrication, as a model's would be.
    """
    context = program.text()
    schema = json_schema(program.result_type)
    subject = program.subject or context
    seed = _seed(context if sample == 0 else f"{context}\x1f{sample}")
    value = fabricate(schema, seed=seed, context=subject, sizes=program.sizes)
    result = program.result_type.model_validate(value)
    raw = result.model_dump_json()
    if program.formatter is not None and program.parser is not None:
        raw = program.formatter(result)
        result = program.parser(raw)
    tokens_in, tokens_out = len(context) // 4 + 1, len(raw) // 4 + 1
    return Reply(result, raw, OFFLINE_MODEL_NAME, tokens_in, tokens_out, 0.0)
