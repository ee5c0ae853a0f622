"""The one module that talks to LiteLLM and Instructor.

Everything provider-specific lives here: which structured mode suits a provider, how a
LiteLLM exception maps to :class:`ProviderError`, and how usage and cost are read from a
reply. It is imported on the first real call, never by ``import promptflow_dsl``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

import instructor  # noqa: E402
import litellm  # noqa: E402
from instructor.core import InstructorRetryException  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from .._errors import (  # noqa: E402
    TRANSIENT_STATUS,
    ModelSettingError,
    PromptflowError,
    ProviderError,
    ValidationExhaustedError,
)
from .._model import Mode, Model  # noqa: E402
from .._program import PromptProgram  # noqa: E402
from .._secrets import scrub_exception_chain  # noqa: E402
from .._sized import as_plain  # noqa: E402
from ._batch import COUNTED_HEADER, BatchClients, batch_key, check_batchable  # noqa: E402
from ._modes import (  # noqa: E402
    FORCING,
    RAW_PROMPT,
    is_mode_refusal,
    next_mode,
    pick_mode,
    provider_of,
    settle_mode,
    with_fields,
)
from ._portal import at_exit  # noqa: E402
from ._salvage import json_object  # noqa: E402
from ._types import EmbeddingReply, Measure, Measured, Reply  # noqa: E402

_log = logging.getLogger("promptflow_dsl")

Send = Callable[[Callable[[], Awaitable[Any]], Measure[Any]], Awaitable[Any]]
"""The engine's way to send one HTTP request: ``await send(request, measure)``."""

litellm.suppress_debug_info = True
at_exit(litellm.close_litellm_async_clients)  # no "Unclosed client session" noise at exit
# LiteLLM's own types trip a harmless Pydantic warning the first time a schema is built.
warnings.filterwarnings("ignore", message=r".*ReadOnly. qualifier", category=UserWarning)
# litellm.acompletion builds its request coroutine in a worker thread; a call cancelled
# while that thread runs (early stop, Ctrl-C, on_error="raise") drops the coroutine unsent.
warnings.filterwarnings(
    "ignore", message=r"coroutine '\w+\.acompletion' was never awaited", category=RuntimeWarning
)

for _name in ("instructor", "LiteLLM", "httpx"):
    logging.getLogger(_name).addHandler(logging.NullHandler())
    logging.getLogger(_name).propagate = False

__all__ = [
    "batch_price",
    "call_provider",
    "check_model",
    "embed_batch",
]

_INSTRUCTOR_MODES = {
    "tools": instructor.Mode.TOOLS,
    "json": instructor.Mode.JSON,
    "json_schema": instructor.Mode.JSON_SCHEMA,
    "md_json": instructor.Mode.MD_JSON,
}
HF_ROUTER = "https://router.huggingface.co/v1"
"""Hugging Face's OpenAI-compatible router to its inference providers."""


def _request_kwargs(program: PromptProgram[Any], model: Model) -> dict[str, Any]:
    kwargs: dict[str, Any] = {**program.params, **model.call_params()}
    name, api_base, api_key = on_the_wire(model)
    kwargs.update(model=name, timeout=model.timeout, drop_params=True)
    kwargs["num_retries"] = 0  # the engine retries; the SDK underneath must not
    if api_base:
        kwargs["api_base"] = api_base
    if api_key:
        kwargs["api_key"] = api_key
    return kwargs


def on_the_wire(model: Model) -> tuple[str, str | None, str | None]:
    """The model string, api_base and key that LiteLLM is given for *model*.

    A ``huggingface/`` model goes as what Hugging Face serves, an OpenAI-compatible chat
    API: a dedicated endpoint at its ``api_base``, or the router with the inference
    provider in the model name. LiteLLM's own huggingface path fetches the model's
    ``config.json`` from the Hub, synchronously, on every call.

    >>> on_the_wire(Model("huggingface/together/meta-llama/Llama-3.1-8B", api_key="hf_x"))
    ('openai/meta-llama/Llama-3.1-8B:together', 'https://router.huggingface.co/v1', 'hf_x')
    >>> on_the_wire(Model("huggingface/tgi", api_base="http://gpu:8080", api_key="hf_x"))
    ('openai/tgi', 'http://gpu:8080/v1', 'hf_x')
    """
    if provider_of(model.name) != "huggingface":
        return model.name, model.api_base, model.api_key
    served = model.name.split("/", 1)[1]
    key = model.api_key or os.environ.get("HF_TOKEN") or os.environ.get("HUGGINGFACE_API_KEY")
    if model.api_base is None:
        first, rest = served.split("/", 1) if "/" in served else ("", served)
        if "/" in rest:  # huggingface/<provider>/<org>/<model>
            served = f"{rest}:{first}"
        return f"openai/{served}", HF_ROUTER, key
    base = model.api_base.rstrip("/").removesuffix("/chat/completions")
    base = base if base.endswith("/v1") else f"{base}/v1"
    return f"openai/{served}", base, key or "none"  # an open endpoint needs no key


@dataclass(frozen=True)
class _Route:
    """Where this task's requests go: the engine's send, the model (for error hints), and in
    batch mode the clients that hand LiteLLM's requests to batches."""

    send: Send
    model: Model
    batch: BatchClients | None = None


_route: ContextVar[_Route] = ContextVar("promptflow_route")


async def _attempt(route: _Route, request: Callable[..., Awaitable[Any]], kwargs: Any) -> Any:
    """One HTTP request through the engine's send: LiteLLM's errors become ProviderErrors.

    In batch mode LiteLLM is given a client whose requests go to a batch, and the reply is
    priced at the provider's batch price.
    """
    measure = _usage
    if route.batch is not None:
        provider = provider_of(kwargs["model"])
        client = route.batch.for_call(provider, kwargs.get("api_base"), kwargs.get("api_key"))
        kwargs, measure = {**kwargs, "client": client}, _batch_usage

    async def once() -> Any:
        try:
            return await request(**kwargs)
        except Exception as exc:
            raise _provider_error(exc, route.model, kwargs) from exc

    return await route.send(once, lambda response: measure(response, kwargs))


async def _chat(**kwargs: Any) -> Any:
    """Instructor's completion function: every request it makes, re-asks included, is sent
    through the engine, so each one gets the budget, the limits and the retry policy. A
    reply whose object came back fenced or wrapped in prose is salvaged before any re-ask."""
    response = await _attempt(_route.get(), litellm.acompletion, kwargs)
    _salvage(response, kwargs)
    return response


def _salvage(response: Any, kwargs: dict[str, Any]) -> None:
    """Put a JSON object found in a reply's text where Instructor looks for it: a tool call
    when tools were asked for and none came, else the whole content."""
    try:
        message = response.choices[0].message
    except (AttributeError, IndexError):
        return
    content = message.content if isinstance(message.content, str) else None
    if content is None or getattr(message, "tool_calls", None):
        return
    found = json_object(content)
    if found is None:
        return
    tools = kwargs.get("tools") or []
    if tools:
        name = tools[0].get("function", {}).get("name", "")
        function = litellm.types.utils.Function(name=name, arguments=found)
        call = litellm.types.utils.ChatCompletionMessageToolCall(
            id="salvaged", type="function", function=function
        )
        message.tool_calls = [call]
    elif found != content.strip():
        message.content = found


_checked: set[tuple[str, str | None, bool, str | None]] = set()
_SCHEMA_CHECKED = frozenset({"gemini", "vertex_ai"})  # LiteLLM knows their schema support


def check_model(model: Model) -> None:
    """Fail before the first call, in one line: a model string LiteLLM cannot route, or a
    provider key that is not set (a model with its own api_base may need none)."""
    seen = (model.name, model.api_base, bool(model.api_key), model.mode)
    if seen in _checked:
        return
    try:
        litellm.get_llm_provider(model.name)
    except Exception:
        message = (
            f"model {model.name!r}: no provider is known by that prefix; model strings "
            "look like 'openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku-20241022' or "
            "'ollama/llama3.1' (see LiteLLM's provider list)"
        )
        raise ModelSettingError(message) from None
    if model.mode == "json_schema" and provider_of(model.name) in _SCHEMA_CHECKED:
        if not litellm.supports_response_schema(model=model.name):
            message = (
                f"model {model.name!r} takes no response schema: LiteLLM would drop the "
                "schema and the reply would not be held to it; use mode='tools'"
            )
            raise ModelSettingError(message)
    if model.mode in ("json_schema", "json") and not _takes_response_format(model.name):
        message = (
            f"model {model.name!r}: LiteLLM drops response_format for the "
            f"{provider_of(model.name)} provider, so mode={model.mode!r} would not hold the "
            "reply to the schema; use mode='tools' (or leave mode unset)"
        )
        raise ModelSettingError(message)
    if not model.api_key and not model.api_base:
        try:
            missing = litellm.validate_environment(model.name).get("missing_keys") or []
        except Exception:  # LiteLLM cannot tell for this provider
            missing = []
        keys = [name for name in missing if "KEY" in name or "TOKEN" in name]
        if keys:
            message = (
                f"model {model.name!r} needs an API key: set {keys[0]}, "
                "or pass Model(..., api_key=...)"
            )
            raise ModelSettingError(message)
    _checked.add(seen)


def _takes_response_format(model_name: str) -> bool:
    """False where LiteLLM would drop ``response_format`` (its provider maps no such field)."""
    try:
        name, provider, _, _ = litellm.get_llm_provider(model_name)
        supported = litellm.get_supported_openai_params(model=name, custom_llm_provider=provider)
    except Exception:  # LiteLLM cannot tell for this provider: let the call say
        return True
    return supported is None or "response_format" in supported


_openai_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, Any]] = (
    weakref.WeakKeyDictionary()
)


def _openai_client(model: Model, providers: tuple[str, ...], kind: type) -> Any | None:
    """One *kind* of OpenAI client per server, key and event loop, for a model whose wire
    provider is one of *providers* (else None: LiteLLM makes its own)."""
    name, api_base, api_key = on_the_wire(model)
    if provider_of(name) not in providers:
        return None
    api_key = api_key or os.environ.get("OPENAI_API_KEY")
    if not api_key:
        return None  # LiteLLM's own error names the missing key
    from litellm.llms.openai.common_utils import BaseOpenAILLM

    clients = _openai_clients.setdefault(asyncio.get_running_loop(), {})
    key = (kind, api_base, api_key, model.timeout)
    if key not in clients:
        clients[key] = kind(
            api_key=api_key,
            base_url=api_base,
            http_client=BaseOpenAILLM._get_async_http_client(),
            timeout=model.timeout,
            max_retries=0,
        )
    return clients[key]


def _completion_client(model: Model) -> Any | None:
    """The client for raw completions: LiteLLM makes a new one, with a new HTTP session it
    never closes, for every such call."""
    from openai import AsyncOpenAI

    return _openai_client(model, ("openai", "text-completion-openai"), AsyncOpenAI)


async def _close_openai_clients() -> None:
    for clients in list(_openai_clients.values()):
        for client in clients.values():
            await client.close()


at_exit(_close_openai_clients)


@functools.cache
def _instructor_client(mode: str) -> Any:
    return instructor.from_litellm(_chat, mode=_INSTRUCTOR_MODES[mode])


_RESPONSE_MODELS: dict[type[BaseModel], type[BaseModel]] = {}


def _response_model(result_type: type[BaseModel]) -> type[BaseModel]:
    """The result type as Instructor's response schema, built once per type (as its JSON
    schema is, in ``_schema.json_schema``).

    Given a plain model, Instructor builds this subclass on every call (a new class, its
    validator and its JSON schema each time); given one, it uses it as is, and its own
    per-class schema cache then hits. The request it sends is the same.
    """
    if result_type not in _RESPONSE_MODELS:
        _RESPONSE_MODELS[result_type] = instructor.response_schema(result_type)
    return _RESPONSE_MODELS[result_type]


async def call_provider(
    program: PromptProgram[Any],
    model: Model,
    send: Send,
    *,
    batch: BatchClients | None = None,
    key: str = "",
) -> Reply:
    """Send the program to the model and decode the reply (validation re-asks included).

    Each HTTP request goes through *send*, which owns the budget, limits and retries. With
    *batch*, the requests go to provider batches, named after the call's cache *key*.
    """
    check_model(model)
    if batch is not None:
        check_batchable(model)
        batch_key.set(key)
    route = _Route(send, model, batch)
    token = _route.set(route)
    mode = pick_mode(program, model)
    try:
        while True:
            try:
                return await _call(program, model, route, mode)
            except ProviderError as error:
                lower = next_mode(mode, program) if model.mode is None else None
                if lower is None or not is_mode_refusal(error):
                    raise
                settle_mode(model, mode, lower, error)
                mode = lower
    finally:
        _route.reset(token)


async def _call(program: PromptProgram[Any], model: Model, route: _Route, mode: Mode) -> Reply:
    kwargs = _request_kwargs(program, model)
    try:
        if program.is_raw and mode == "text":
            kwargs = with_fields(kwargs, RAW_PROMPT.get(provider_of(model.name), {}))
            client = _completion_client(model)
            if client is not None:
                kwargs["client"] = client
            request = {"prompt": program.prompt, **kwargs}
            response = await _attempt(route, litellm.atext_completion, request)
            return _text_reply(program, response, response.choices[0].text, model, request)
        if mode == "text":
            request = {"messages": program.render(), **kwargs}
            response = await _attempt(route, litellm.acompletion, request)
            text = response.choices[0].message.content
            return _text_reply(program, response, text, model, request)
        if mode == "tools":
            kwargs = with_fields(kwargs, FORCING.get(provider_of(model.name), {}))
        client = _instructor_client(mode)
        messages = (
            [{"role": "user", "content": program.prompt}] if program.is_raw else program.render()
        )
        result, response = await client.chat.completions.create_with_completion(
            messages=messages,
            response_model=_response_model(program.result_type),
            max_retries=model.max_validation_retries,
            token_budget=model.validation_token_budget,
            **kwargs,
        )
    except PromptflowError:
        raise  # the engine's own errors (a provider error after retries, a parse error, the budget)
    except InstructorRetryException as exc:
        cause = exc.__cause__
        if isinstance(cause, PromptflowError):
            raise cause from None  # a request failed during a re-ask: that is the real error
        scrub_exception_chain(exc)  # it is chained below, so tracebacks print it
        raw = _raw_text(exc.last_completion) if exc.last_completion is not None else None
        message = f"reply failed validation as {program.result_type.__name__}: {exc}"
        raise ValidationExhaustedError(message, raw_text=raw, attempts=exc.n_attempts) from exc
    except Exception as exc:
        raise _provider_error(exc, model) from exc
    # Instructor returns an instance of a subclass it builds; hand back the plain result type.
    plain = as_plain(result, program.result_type)
    used = _usage(response, kwargs)
    return Reply(plain, _raw_text(response), model.name, *_tokens(used))


def _text_reply(
    program: PromptProgram[Any],
    response: Any,
    text: str | None,
    model: Model,
    request: dict[str, Any],
) -> Reply:
    raw = text or ""
    truncated = getattr(response.choices[0], "finish_reason", None) == "length"
    result = program.parse(raw, truncated=truncated)
    used = _usage(response, request)
    return Reply(result, raw, model.name, *_tokens(used), via_text=True, truncated=truncated)


def _tokens(used: Measured) -> tuple[int | None, int | None, float | None]:
    return used.input_tokens, used.output_tokens, used.cost_usd


def _raw_text(response: Any) -> str | None:
    try:
        message = response.choices[0].message
    except (AttributeError, IndexError):
        return None
    if getattr(message, "tool_calls", None):
        return message.tool_calls[0].function.arguments
    return message.content


def _usage(response: Any, request: dict[str, Any]) -> Measured:
    """Tokens and dollars of one reply; LiteLLM's counter estimates what a server left out."""
    usage = getattr(response, "usage", None)
    tokens_in = getattr(usage, "prompt_tokens", None) or None
    tokens_out = getattr(usage, "completion_tokens", None) or None
    if tokens_in is None or tokens_out is None:
        tokens_in, tokens_out = _estimate_usage(response, request, tokens_in, tokens_out)
        price = _price(request.get("model", ""), tokens_in, tokens_out)
        return Measured(tokens_in, tokens_out, price, estimated=True)
    hidden = getattr(response, "_hidden_params", None) or {}
    if "response_cost" in hidden:  # LiteLLM priced the reply already: don't do it twice
        cost = hidden["response_cost"]
        return Measured(tokens_in, tokens_out, float(cost) if cost is not None else None)
    try:
        return Measured(
            tokens_in, tokens_out, float(litellm.completion_cost(completion_response=response))
        )
    except Exception:  # LiteLLM raises for models missing from its price map
        _no_price(request.get("model", ""))
        return Measured(tokens_in, tokens_out, None)


def _estimate_usage(
    response: Any, request: dict[str, Any], tokens_in: int | None, tokens_out: int | None
) -> tuple[int, int]:
    model = request.get("model", "")
    if tokens_in is None:
        if "messages" in request:
            tokens_in = litellm.token_counter(model=model, messages=request["messages"])
        else:
            tokens_in = litellm.token_counter(model=model, text=str(request.get("prompt", "")))
    if tokens_out is None:
        text = _raw_text(response) or getattr(_first_choice(response), "text", None) or ""
        tokens_out = litellm.token_counter(model=model, text=text, count_response_tokens=True)
    return tokens_in, tokens_out


def _first_choice(response: Any) -> Any:
    choices = getattr(response, "choices", None) or [None]
    return choices[0]


BATCH_DISCOUNT = 0.5
"""The price of a batch request against the same request online, where LiteLLM's price map
has no batch price (OpenAI and Anthropic both document half)."""


def batch_price(model: str, tokens_in: int, tokens_out: int) -> float | None:
    """Dollars for a batch request: LiteLLM's batch price for *model*, else half its price.

    >>> batch_price("gpt-4o-mini", 1_000_000, 0)
    0.075
    """
    info: dict[str, Any]
    try:
        info = dict(litellm.get_model_info(model))
    except Exception:  # not in the price map
        info = {}
    per_in, per_out = (
        info.get("input_cost_per_token_batches"),
        info.get("output_cost_per_token_batches"),
    )
    if per_in is not None and per_out is not None:
        return float(tokens_in * per_in + tokens_out * per_out)
    online = _price(model, tokens_in, tokens_out)
    return None if online is None else online * BATCH_DISCOUNT


def _batch_usage(response: Any, request: dict[str, Any]) -> Measured:
    """A batch answer's usage at the batch price; ``counted`` when the transport says an
    earlier run collected (and counted) this very answer."""
    used = _usage(response, request)
    headers = (getattr(response, "_hidden_params", None) or {}).get("additional_headers") or {}
    counted = f"llm_provider-{COUNTED_HEADER}" in headers
    if used.input_tokens is None or used.output_tokens is None:
        return Measured(used.input_tokens, used.output_tokens, used.cost_usd, counted=counted)
    price = batch_price(request.get("model", ""), used.input_tokens, used.output_tokens)
    return Measured(
        used.input_tokens, used.output_tokens, price, estimated=used.estimated, counted=counted
    )


def _price(model: str, tokens_in: int, tokens_out: int) -> float | None:
    try:
        return float(sum(litellm.cost_per_token(model, tokens_in, tokens_out)))
    except Exception:  # not in the price map
        _no_price(model)
        return None


_unpriced: set[str] = set()


def _no_price(model: str) -> None:
    """Say once per model that its dollars are unknown, so max_cost_usd cannot see them."""
    if model and model not in _unpriced:
        _unpriced.add(model)
        _log.warning(
            "%s has no price in LiteLLM's price map: its cost is recorded as null and "
            "max_cost_usd does not count it",
            model,
        )


def _provider_error(
    exc: BaseException, model: Model, request: dict[str, Any] | None = None
) -> ProviderError:
    # The provider's exception is chained under ours: a server that echoes the key would
    # put it in every traceback, so its text is scrubbed where it stands (and before the
    # message is cut short, which could leave half a key that no longer matches).
    from .._secrets import remember_model_secrets

    remember_model_secrets(model.api_key, model.params)  # a model unpickled skipped __init__
    scrub_exception_chain(exc)
    status = getattr(exc, "status_code", None)
    kind = type(exc).__name__
    text = str(getattr(exc, "message", None) or exc)
    for prefix in (f"litellm.{kind}: ", f"{kind}: "):  # LiteLLM repeats the class name
        while text.startswith(prefix):
            text = text[len(prefix) :]
    # A missing key surfaces from the OpenAI client as a "server error" before any request.
    unauthorised = (
        status == 401
        or isinstance(exc, litellm.AuthenticationError)
        or "Missing credentials" in text
    )
    timed_out = isinstance(exc, (litellm.Timeout, TimeoutError))
    connection = isinstance(exc, litellm.APIConnectionError)
    transient = not unauthorised and (timed_out or connection or status in TRANSIENT_STATUS)
    retry_after = _retry_after(exc)
    message = f"{kind}: {text}"[:500]
    if unauthorised:
        message += f" Check the API key: {_key_hint(model)}"
    if status == 404:
        message += _not_found_hint(exc, model)
    return ProviderError(message, status=status, transient=transient, retry_after=retry_after)


_PATHS = {"anthropic": "/v1/messages"}  # what LiteLLM appends to an api_base, per provider
_WHOLE_URLS = {"cohere": "/v2/chat", "cohere_chat": "/v2/chat"}  # api_base used as it stands


def _not_found_hint(exc: BaseException, model: Model) -> str:
    """Name the URL that was not found where it is known, and the usual cause: a doubled
    ``/v1`` in api_base."""
    base = (model.api_base or "").rstrip("/")
    provider = provider_of(model.name)
    path = _PATHS.get(provider)
    whole = _WHOLE_URLS.get(provider)
    if base and whole and not base.endswith(whole):
        return (
            f" (the request went to {base}); for {provider}/ LiteLLM takes api_base as the "
            f"whole chat URL: use {base + whole!r}."
        )
    if base and path:
        hint = f" (the request went to {base}{path})"
        if base.endswith("/v1"):
            return (
                hint + f"; api_base ends in /v1 and the provider adds its own: use {base[:-3]!r}."
            )
        return hint + "; check the model name and api_base."
    return " Check the model name and api_base."


def _retry_after(exc: BaseException) -> float | None:
    """The seconds the provider asked to wait: its ``Retry-After`` header, else Gemini's
    ``retryDelay`` in the error body."""
    value = next(filter(None, map(_retry_header, _chained_headers(exc))), None)
    try:
        return float(value) if value is not None else _retry_delay_in_body(exc)
    except ValueError:  # an HTTP date: the engine's own backoff will do
        return _retry_delay_in_body(exc)


def _chained_headers(exc: BaseException) -> Iterator[Any]:
    """Response headers found on *exc* and on the exceptions it was raised from.

    LiteLLM keeps a provider's headers on its exception (``litellm_response_headers``) and
    rebuilds ``response`` without them. Where its provider error drops them altogether
    (Cohere's ``CohereError`` is built without the headers it is handed), the HTTP error
    it was raised from still holds the real response, one or two links down the chain.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield getattr(current, "litellm_response_headers", None)
        yield getattr(current, "headers", None)
        yield getattr(getattr(current, "response", None), "headers", None)
        current = current.__cause__ or current.__context__


def _retry_header(headers: Any) -> str | None:
    """The ``Retry-After`` value in *headers* (a dict or httpx's headers), any spelling."""
    items = getattr(headers, "items", None)
    if items is None:
        return None
    return next((str(v) for k, v in items() if str(k).lower() == "retry-after"), None)


_RETRY_DELAY = re.compile(r'"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"')


def _retry_delay_in_body(exc: BaseException) -> float | None:
    """Gemini's wait, which it sends in the error body (``RetryInfo.retryDelay``)."""
    match = _RETRY_DELAY.search(str(getattr(exc, "message", None) or exc))
    return float(match.group(1)) if match else None


_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "huggingface": "HF_TOKEN",
    "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "cohere": "COHERE_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "azure": "AZURE_API_KEY",
}


def _key_hint(model: Model) -> str:
    """Which environment variable the provider reads its key from."""
    provider = provider_of(model.name)
    name = _KEY_VARIABLES.get(provider)
    if name is None:
        try:
            missing = litellm.validate_environment(model.name).get("missing_keys") or []
        except Exception:  # an unknown provider: say what we can
            missing = []
        name = next(
            (m for m in missing if "KEY" in m or "TOKEN" in m), f"{provider.upper()}_API_KEY"
        )
    return f"set {name}, or pass Model(..., api_key=...)."


# ---------------------------------------------------------------------------------------
# Embeddings: one request embeds a batch of texts (``litellm.aembedding``). Apart from
# the model routing and the error mapping above, nothing here is shared with chat calls.


async def embed_batch(
    texts: list[str], model: Model, send: Send, *, dimensions: int | None = None
) -> EmbeddingReply:
    """Embed *texts* in one request sent through *send* (the engine's budget, limits and
    retries). *dimensions* asks for shorter vectors where the model can give them."""
    check_model(model)
    name, api_base, api_key = on_the_wire(model)
    request: dict[str, Any] = {
        **model.params,
        "model": name,
        "input": list(texts),
        "timeout": model.timeout,
        "drop_params": True,
        "num_retries": 0,  # the engine retries; the SDK underneath must not
        "max_retries": 0,
    }
    for key, value in (("api_base", api_base), ("api_key", api_key), ("dimensions", dimensions)):
        if value is not None:
            request[key] = value
    client = _embedding_client(model)
    if client is not None:
        request["client"] = client
    route = _Route(send, model)
    response = await _attempt_embedding(route, request)
    items = sorted(_items(response), key=lambda item: item[0])
    if [index for index, _ in items] != list(range(len(texts))):
        message = f"the provider returned {len(items)} embeddings for {len(texts)} texts"
        raise ProviderError(message)
    vectors = [[float(x) for x in vector] for _, vector in items]
    return EmbeddingReply(vectors, model.name, _embedding_usage(response, request))


async def _attempt_embedding(route: _Route, request: dict[str, Any]) -> Any:
    async def once() -> Any:
        try:
            return await litellm.aembedding(**request)
        except Exception as exc:
            raise _provider_error(exc, route.model, request) from exc

    return await route.send(once, lambda response: _embedding_usage(response, request))


def _items(response: Any) -> list[tuple[int, list[float]]]:
    """(index, vector) of each embedding in a response (LiteLLM keeps them as dicts)."""
    found = []
    for position, item in enumerate(getattr(response, "data", None) or []):
        get = item.get if isinstance(item, dict) else functools.partial(getattr, item)
        index = get("index", position)
        found.append((position if index is None else int(index), list(get("embedding", []))))
    return found


def _embedding_usage(response: Any, request: dict[str, Any]) -> Measured:
    """Input tokens and dollars of one embedding reply; LiteLLM's counter estimates the
    tokens a server left out. An embedding has no output tokens."""
    usage = getattr(response, "usage", None)
    tokens = getattr(usage, "prompt_tokens", None) or None
    estimated = tokens is None
    if tokens is None:
        text = "\n".join(request["input"])
        tokens = litellm.token_counter(model=request["model"], text=text)
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if not estimated else None
    if cost is None:
        cost = _price(request["model"], tokens, 0)
    return Measured(tokens, 0, float(cost) if cost is not None else None, estimated=estimated)


def _embedding_client(model: Model) -> Any | None:
    """An OpenAI client that never retries, for ``openai/`` embedding models.

    LiteLLM hands its OpenAI embedding client ``max_retries or 2``, so ``max_retries=0``
    becomes two retries that the engine would neither see nor count; this client ignores
    the setting.
    """
    return _openai_client(model, ("openai",), _never_retrying_client_type())


@functools.cache
def _never_retrying_client_type() -> type:
    """``AsyncOpenAI`` with a ``max_retries`` that stays 0 whatever is set."""
    from openai import AsyncOpenAI

    def get(self: Any) -> int:
        return 0

    def set_(self: Any, value: int) -> None:
        pass

    return type("NeverRetryingOpenAI", (AsyncOpenAI,), {"max_retries": property(get, set_)})
