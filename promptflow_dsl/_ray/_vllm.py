"""A technique step on self-hosted models: Ray Data's vLLM processors (``ray.data.llm``).

On GPU clusters the model runs inside Ray, in vLLM engines, rather than behind an HTTP
server: :func:`build_vllm_processor` turns a technique step into a Ray Data LLM processor.
Its *preprocess* builds each row's prompt program (the same messages and decoding
parameters as the HTTP path, and for a structured result its JSON schema as vLLM's
``structured_outputs``); its *postprocess* reads the reply into the same typed result and
writes the same columns: the result fields, ``model_name``, ``usage`` and ``error`` (a row
whose reply does not read keeps its inputs, nulls, and why). A technique that makes one
call per row fits; a multi-call technique (Evol-Instruct's rounds) needs the engine's
loop, so run it against vLLM's OpenAI-compatible server (``hosted_vllm/...``) instead.

The two row functions are plain Python:

>>> from promptflow_dsl import text_generation
>>> step = text_generation.step()
>>> requests, replies = VllmRequests(step), VllmReplies(step, "m")
>>> asked = requests({"instruction": "Name a river."})
>>> asked["messages"][-1]["content"], asked["sampling_params"].get("structured_outputs")
('Name a river.', None)
>>> row = replies({**asked, "generated_text": " The Nile. ", "num_input_tokens": 9,
...                "num_generated_tokens": 3})
>>> row["generation"], row["model_name"], row["usage"]["output_tokens"], row["error"]
('The Nile.', 'm', 3, None)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .._engine._session import RowError
from .._engine._types import Usage
from .._errors import EngineError, InputError, PromptflowError
from .._program import PromptProgram
from .._recipe._llm_step import TechniqueStep
from .._schema import json_schema
from .._sized import size_notes

__all__ = ["SAMPLING_PARAMS", "VllmReplies", "VllmRequests", "build_vllm_processor"]

SAMPLING_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "max_tokens",
        "min_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
    }
)
"""The decoding parameters that go to vLLM's ``SamplingParams`` (others are dropped)."""

_FAILED = "__promptflow_failed"  # a row that made no prompt: why, as JSON
_NOT_ASKED = ({"role": "user", "content": "-"},)  # what such a row sends, for one token


def _checked(step: TechniqueStep) -> TechniqueStep:
    if step.technique.is_sequence:
        message = (
            f"step {step.name!r}: {step.technique.name} makes several calls per row, which one "
            "pass of a vLLM processor cannot; serve the model with vLLM's OpenAI-compatible "
            "server and run the recipe with model='hosted_vllm/...'"
        )
        raise EngineError(message, step=step.name)
    if step.num_generations != 1:
        message = (
            f"step {step.name!r}: num_generations={step.num_generations} on a vLLM processor; "
            "repeat the rows instead, or use the HTTP path"
        )
        raise EngineError(message, step=step.name)
    return step


class VllmRequests:
    """*preprocess*: a row and its prompt for vLLM (``messages``, ``sampling_params``)."""

    def __init__(self, step: TechniqueStep) -> None:
        self.step = _checked(step)

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row, plus what vLLM needs to answer it (or why it cannot be asked)."""
        try:
            program = _program(self.step, row)
        except PromptflowError as exc:
            failed = RowError(self.step.name, _error_type(exc), str(exc))
            return {
                **row,
                "messages": list(_NOT_ASKED),
                "sampling_params": {"max_tokens": 1},
                _FAILED: json.dumps(dataclasses.asdict(failed)),
            }
        model = self.step.model
        params = {**program.params, **(model.call_params() if model else {})}
        sampling = {k: v for k, v in params.items() if k in SAMPLING_PARAMS}
        if program.decoding == "structured":
            sampling["structured_outputs"] = {"json": json_schema(program.result_type)}
        return {**row, "messages": program.render(), "sampling_params": sampling, _FAILED: None}


class VllmReplies:
    """*postprocess*: the row with the step's columns, read from vLLM's reply."""

    def __init__(self, step: TechniqueStep, model_name: str) -> None:
        self.step = _checked(step)
        self.model_name = model_name

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row's inputs, the result's fields, ``model_name``, ``usage`` and ``error``."""
        kept = {k: v for k, v in row.items() if k not in _ENGINE_COLUMNS}
        fields = self.step.technique.output_columns(self.step.attributes)
        failed = row.get(_FAILED)
        if failed:
            return {**kept, **dict.fromkeys(fields), **_bookkeeping(None, None, json.loads(failed))}
        text = str(row.get("generated_text") or "")
        usage = Usage(
            input_tokens=row.get("num_input_tokens"),
            output_tokens=row.get("num_generated_tokens"),
            attempts=1,
        )
        try:
            program = _program(self.step, row)
            if program.decoding == "structured":
                result = program.result_type.model_validate_json(text)
            else:
                result = program.parse(text)
        except (PromptflowError, ValidationError) as exc:
            error = RowError(self.step.name, _error_type(exc), str(exc), 1, text)
            return {**kept, **dict.fromkeys(fields), **_bookkeeping(None, usage, vars(error))}
        dumped = result.model_dump()
        notes = [f"{self.step.name}: {note}" for note in size_notes(result)] or None
        return {
            **kept,
            **{name: dumped[name] for name in fields},
            **_bookkeeping(self.model_name, usage, None),
            "notes": notes,
        }


_ENGINE_COLUMNS = frozenset(
    {
        "messages",
        "sampling_params",
        "generated_text",
        "generated_tokens",
        "num_input_tokens",
        "num_generated_tokens",
        "prompt",
        "prompt_token_ids",
        "request_id",
        "time_taken_llm",
        "params",
        "metrics",
        _FAILED,
    }
)


def _program(step: TechniqueStep, row: Mapping[str, Any]) -> PromptProgram[Any]:
    """The row's prompt program (a pure value: built again to read the reply)."""
    missing = [
        step.columns[p]
        for p in step.technique.inputs
        if p not in step.technique.optional_inputs and row.get(step.columns[p]) is None
    ]
    if missing:
        message = f"input column {missing[0]!r} is null"
        raise _MissingInput(message)
    inputs, attributes = step.arguments(row)
    program = step.technique.program(*inputs, **attributes)
    if program.is_raw:
        message = (
            f"{step.technique.name} builds a raw completion prompt; vLLM processors take chat "
            "messages (use the HTTP path, or a chat technique)"
        )
        raise EngineError(message, step=step.name)
    return program


class _MissingInput(InputError):
    """A row whose input is null: no prompt (recorded as ``MissingInput``, as locally)."""


def _error_type(exc: BaseException) -> str:
    if isinstance(exc, _MissingInput):
        return "MissingInput"
    if isinstance(exc, ValidationError):
        return "InvalidReplyError"
    return type(exc).__name__


def _bookkeeping(
    model_name: str | None, usage: Usage | None, error: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "model_name": model_name,
        "usage": vars(usage) if usage is not None else None,
        "error": error,
        "notes": None,
    }


def build_vllm_processor(step: TechniqueStep, config: Any, **build_options: Any) -> Any:
    """A Ray Data LLM processor that runs *step* on vLLM engines: ``processor(dataset)``.

    *config* is a ``ray.data.llm.vLLMEngineProcessorConfig`` (the model, its engine
    settings, the GPUs); *build_options* go to ``ray.data.llm.build_processor``
    (``preprocess_map_kwargs``...). The output rows carry the step's columns, as on the
    HTTP path, with ``model_name`` the config's ``model_source``. Needs the ``ray`` extra
    and vLLM on the cluster's GPU nodes.
    """
    try:
        from ray.data.llm import build_processor
    except ImportError:
        message = "vLLM processors need Ray Data LLM: pip install 'promptflow_dsl[ray]' 'ray[llm]'"
        raise EngineError(message) from None
    return build_processor(
        config,
        preprocess=VllmRequests(step),
        postprocess=VllmReplies(step, str(config.model_source)),
        **build_options,
    )
