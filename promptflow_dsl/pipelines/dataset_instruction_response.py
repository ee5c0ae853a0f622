"""Documents to instructions to responses, each response written *with* its document.

Each document gets ``num_instructions`` user queries (:func:`self_instruct`); each query
becomes a row; the response prompt carries the query and the document (the reference
renders an empty document there). Input column: ``input``. Output columns:
``instruction``, ``response``, ``conversation`` (a list of role/content structs),
``system_prompt_key`` (when ``system_prompt`` is a dict) and ``model_name``.

>>> recipe = dataset_instruction_response(model=None, num_instructions=1)
>>> recipe
self_instruct >> explode >> choose >> text_generation >> rename >> conversation
>>> out = recipe.run([{"input": "Owls hunt at night."}], model="mock")
>>> out.columns[:4]
['input', 'instruction', 'system_prompt', 'response']
"""

from __future__ import annotations

from collections.abc import Mapping

from .._model import Model
from .._recipe._frame_steps import choose, conversation, explode, rename
from .._recipe._recipe import Recipe
from ..techniques.self_instruct import self_instruct
from ..techniques.text_generation import text_generation

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_SYSTEM_PROMPT",
    "RESPONSE_TEMPLATE",
    "dataset_instruction_response",
]

DEFAULT_MODEL = "huggingface/meta-llama/Meta-Llama-3.1-8B-Instruct"
DEFAULT_SYSTEM_PROMPT = "You are a creative AI Assistant writer."
RESPONSE_TEMPLATE = """\
{{ instruction }}

Base your answer on this document:

{{ input }}"""


def dataset_instruction_response(
    *,
    model: str | Model | None = DEFAULT_MODEL,
    system_prompt: str | Mapping[str, str] = DEFAULT_SYSTEM_PROMPT,
    hf_token: str | None = None,
    num_instructions: int = 2,
    batch_size: int | None = None,
    seed: int = 0,
) -> Recipe:
    """The recipe, with the reference pipeline's attributes.

    ``model`` defaults to Llama 3.1 8B Instruct on Hugging Face inference (through
    LiteLLM); pass ``None`` to take the run's model. ``hf_token`` is the key for that
    provider (else LiteLLM reads ``HF_TOKEN``). ``system_prompt`` may be a dict of named
    prompts: each row gets one, seeded, with its name in ``system_prompt_key``.
    ``batch_size`` caps the calls in flight for these steps.
    """
    chosen = Model.coerce(model) if model is not None else None
    if chosen is not None and hf_token is not None:
        chosen = chosen.replace(api_key=hf_token)
    keyed = not isinstance(system_prompt, str)
    return (
        self_instruct.step(num_instructions=num_instructions, model=chosen).limited(batch_size)
        >> explode("instructions", into="instruction")
        >> choose(
            system_prompt,
            into="system_prompt",
            key_into="system_prompt_key" if keyed else None,
            seed=seed,
        )
        >> text_generation.step(template=RESPONSE_TEMPLATE, model=chosen).limited(batch_size)
        >> rename(generation="response")
        >> conversation(system="system_prompt", user="instruction", assistant="response")
    )
