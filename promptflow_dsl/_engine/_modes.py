"""Which decoding mode a call takes, and where a model goes when its server refuses a mode.

A provider's default is the mode in which the provider itself enforces the schema:
tools (a forced tool call) for most, ``json_schema`` for Ollama (``format=<schema>``) and
vLLM (guided decoding). A server that refuses a mode with a 400 ("tools param requires
--jinja", "response_format is not supported") moves its model down the chain
``tools -> json_schema -> json -> md_json`` (then ``text``, where the technique has a
parser), once per server, and the move is logged once.

A raw completion prompt (genstruct, the paper's bootstrap) needs a completion endpoint.
Chat-only providers have none, so there the technique's structured path is taken instead,
with the prompt as one user message. Ollama's generate endpoint is one, but it wraps a
prompt in the model's chat template unless the request says ``raw: true``
(:data:`RAW_PROMPT`).

>>> from promptflow_dsl import Model, genstruct
>>> program = genstruct.program("Tides", "The moon pulls the sea.")
>>> pick_mode(program, Model("anthropic/claude-3-5-haiku-20241022"))
'tools'
>>> pick_mode(program, Model("text-completion-openai/davinci-002"))
'text'
>>> next_mode("tools", program)
'json_schema'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from .._errors import ProviderError
from .._model import Mode, Model
from .._program import PromptProgram

__all__ = [
    "FORCING",
    "RAW_PROMPT",
    "is_mode_refusal",
    "next_mode",
    "pick_mode",
    "provider_of",
    "settle_mode",
    "with_fields",
]

_log = logging.getLogger("promptflow_dsl")

PROVIDER_MODES: dict[str, Mode] = {
    "ollama": "json_schema",  # format=<schema>: Ollama constrains the reply to it
    "ollama_chat": "json_schema",  # LiteLLM removes tool_choice for it: tools are optional
    "mistral": "json_schema",  # LiteLLM drops the named tool_choice Instructor sends
    "hosted_vllm": "json_schema",  # guided decoding
    "huggingface": "md_json",
    "text-completion-openai": "md_json",
}
CHAT_ONLY = frozenset(
    {
        "anthropic",
        "azure_ai",
        "bedrock",
        "cohere",
        "cohere_chat",
        "deepseek",
        "gemini",
        "groq",
        "mistral",
        "ollama_chat",
        "openrouter",
        "perplexity",
        "vertex_ai",
        "xai",
    }
)
FORCING: dict[str, dict[str, Any]] = {
    # LiteLLM drops tool_choice for Cohere; its API takes "REQUIRED" in the body.
    "cohere": {"extra_body": {"tool_choice": "REQUIRED"}},
    "cohere_chat": {"extra_body": {"tool_choice": "REQUIRED"}},
}
"""Request fields that force a tool call where LiteLLM's mapping would drop the forcing."""
RAW_PROMPT: dict[str, dict[str, Any]] = {
    # LiteLLM puts Ollama's extra parameters under "options", where raw means nothing;
    # extra_body is merged into the request body itself.
    "ollama": {"extra_body": {"raw": True}},
}
"""Request fields that make a completion endpoint take a raw prompt as it stands."""
_CHAIN: dict[Mode, Mode] = {"tools": "json_schema", "json_schema": "json", "json": "md_json"}
_REFUSAL = re.compile(
    r"tool|function.?call|response.?format|json.?schema|--jinja|structured output|"
    r"grammar|guided",
    re.IGNORECASE,
)
_settled: dict[tuple[str, str | None], Mode] = {}  # a server's refusals, for this process


def with_fields(kwargs: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """*kwargs* with *fields* added; ``extra_body`` is merged, and the caller's entries win.

    >>> with_fields({"extra_body": {"keep_alive": "5m"}}, RAW_PROMPT["ollama"])
    {'extra_body': {'raw': True, 'keep_alive': '5m'}}
    """
    merged = {**fields, **kwargs}
    body = {**fields.get("extra_body", {}), **kwargs.get("extra_body", {})}
    if body:
        merged["extra_body"] = body
    return merged


def provider_of(model_name: str) -> str:
    """The LiteLLM provider prefix of a model string (``openai`` when there is none)."""
    return model_name.split("/", 1)[0] if "/" in model_name else "openai"


def has_completion_endpoint(model: Model) -> bool:
    """False where a raw prompt could only go out as a chat message."""
    provider = provider_of(model.name)
    if provider in CHAT_ONLY:
        return False
    if provider == "huggingface" and model.api_base is None:
        return False  # the router serves chat completions only
    if provider == "openai" and model.api_base is None:
        return _litellm_mode(model.name) != "chat"  # gpt-4o-mini: chat; davinci-002: not
    return True


def _litellm_mode(name: str) -> str | None:
    import litellm

    try:
        return str(litellm.get_model_info(name).get("mode"))
    except Exception:  # not in LiteLLM's price map: a local or new model
        return None


def pick_mode(program: PromptProgram[Any], model: Model) -> Mode:
    """The decoding mode: the model's if set, else the technique's, else the provider's
    (or where a refusal moved this server's model)."""
    if model.mode is not None:
        return model.mode
    if program.is_raw and has_completion_endpoint(model):
        return "text"
    if program.decoding == "text" and program.parser is not None and not program.is_raw:
        return "text"
    settled = _settled.get((model.name, model.api_base))
    return settled or PROVIDER_MODES.get(provider_of(model.name), "tools")


def is_mode_refusal(error: ProviderError) -> bool:
    """True for a server's refusal of a structured mode (not of the model or the key)."""
    return error.status in (400, 422, 500, 501) and bool(_REFUSAL.search(str(error)))


def next_mode(mode: Mode, program: PromptProgram[Any]) -> Mode | None:
    """The next mode down the chain, or None at its end."""
    if mode in _CHAIN:
        return _CHAIN[mode]
    if mode == "md_json" and program.parser is not None:
        return "text"
    return None


def settle_mode(model: Model, refused: Mode, chosen: Mode, error: ProviderError) -> None:
    """Remember that this server refused *refused*; say so once."""
    key = (model.name, model.api_base)
    if _settled.get(key) != chosen:
        _settled[key] = chosen
        _log.warning(
            "%s refused mode %r (%s); using mode %r for it from now on",
            model.name,
            refused,
            str(error)[:160],
            chosen,
        )
