"""Model: a LiteLLM model string plus the parameters of the call.

>>> Model("openai/gpt-4o-mini", temperature=0.2, api_key="sk-secret")
Model('openai/gpt-4o-mini', temperature=0.2, api_key=***)
>>> Model.coerce("ollama/llama3.1").name
'ollama/llama3.1'
>>> Model("openai/x", api_base="http://me:pw@localhost:8000/v1")  # doctest: +ELLIPSIS
Traceback (most recent call last):
  ...
promptflow_dsl._errors.CredentialsInURLError: Model('openai/x'): api_base http://localhost:8000/v1...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ._errors import CredentialsInURLError, ModelSettingError
from ._secrets import (
    credentials_in_url,
    is_secret_name,
    remember_model_secrets,
    without_credentials,
)

__all__ = ["Mode", "Model", "OFFLINE_MODEL"]

Mode = Literal["tools", "json", "json_schema", "md_json", "text"]
"""How a reply is decoded: one of Instructor's structured modes, or ``"text"`` (the parser)."""

OFFLINE_MODEL = "mock"
"""The model string of the offline model, which fabricates schema-valid results."""


@dataclass(frozen=True)
class Model:
    """A model to call: any LiteLLM model string, plus call parameters.

    ``mode`` picks the decoding: ``None`` lets the technique and the provider decide;
    ``"text"`` sends a plain completion through the technique's parser; the others are
    Instructor's structured modes. ``max_validation_retries`` bounds the re-asks after a
    reply fails validation, and ``validation_token_budget`` the tokens one row may spend on
    them (each re-ask resends the conversation). ``rpm`` and ``tpm`` cap requests and tokens per
    minute for this model. ``batch=True`` sends its calls through the provider's batch API
    (OpenAI, Anthropic): half the price, answers within a day. ``params`` holds any other
    LiteLLM argument (``top_p``,
    ``stop``, ``presence_penalty``, ...). The API key never shows in a repr, nor in any
    error message (the model remembers it as a secret to mask); ``api_base`` may not carry
    credentials (:class:`CredentialsInURLError`).
    """

    name: str
    temperature: float | None = None
    max_tokens: int | None = None
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    mode: Mode | None = None
    timeout: float = 120.0
    max_validation_retries: int = 2
    validation_token_budget: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    batch: bool = False
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in get_args(Mode):
            message = (
                f"Model({self.name!r}): mode {self.mode!r} is not one of "
                f"{', '.join(get_args(Mode))}; or leave it None to let the provider decide"
            )
            raise ModelSettingError(message)
        if self.api_base is not None and credentials_in_url(self.api_base):
            message = (
                f"Model({self.name!r}): api_base {without_credentials(self.api_base)} must "
                "not carry credentials; put the key in the provider's environment variable "
                "(e.g. OPENAI_API_KEY) or Model(api_key=...)"
            )
            raise CredentialsInURLError(message)
        remember_model_secrets(self.api_key, self.params)

    @staticmethod
    def coerce(model: str | Model) -> Model:
        """A ``Model`` from a model string, or the model itself."""
        if isinstance(model, Model):
            return model
        if isinstance(model, str) and model.strip():
            return Model(model.strip())
        message = f"model must be a model string or a Model, not {model!r}"
        raise TypeError(message)

    @property
    def is_offline(self) -> bool:
        """True for the offline model, which makes no network call."""
        return self.name == OFFLINE_MODEL or self.name.startswith(OFFLINE_MODEL + "/")

    def replace(self, **changes: Any) -> Model:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def call_params(self) -> dict[str, Any]:
        """The decoding parameters this model sets explicitly (None means unset)."""
        explicit = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        return {**{k: v for k, v in explicit.items() if v is not None}, **self.params}

    def __repr__(self) -> str:
        shown = [repr(self.name)]
        for f in dataclasses.fields(self)[1:]:
            value = getattr(self, f.name)
            if f.name == "params" and value:
                shown.append(f"params={_masked_params(value)!r}")
            elif value != f.default and f.name != "params":
                shown.append(f"{f.name}={'***' if f.name == 'api_key' else repr(value)}")
        return f"Model({', '.join(shown)})"


def _masked_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """*params* with the values of secret-named entries (and of their entries) as ``***``."""
    return {
        name: "***"
        if is_secret_name(str(name))
        else _masked_params(value)
        if isinstance(value, Mapping)
        else value
        for name, value in params.items()
    }
