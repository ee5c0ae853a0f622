"""promptflow_dsl: prompt programs for synthetic instruction data.

Techniques are pure functions from typed inputs to prompt programs; recipes compose them
with ``>>`` over Polars frames; any LiteLLM provider runs them.

>>> from promptflow_dsl import self_instruct, explode, text_generation
>>> self_instruct.step(num_instructions=3) >> explode("instructions", into="instruction") \\
...     >> text_generation.step()
self_instruct >> explode >> text_generation
"""

import os as _os

# LiteLLM fetches its price map from the internet at import unless told otherwise.
_os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
_os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

from ._engine._batch import BatchOptions  # noqa: E402
from ._engine._cache import ReplyCache  # noqa: E402
from ._engine._interpreter import RetryPolicy  # noqa: E402
from ._engine._session import Session  # noqa: E402
from ._engine._types import Usage  # noqa: E402
from ._errors import (  # noqa: E402
    AttributeValueError,
    BudgetExhaustedError,
    ColumnOverwriteWarning,
    CompositionError,
    CredentialsInURLError,
    EngineError,
    InputError,
    InputFileError,
    InputTypeError,
    InvalidReplyError,
    MissingColumnError,
    ModelSettingError,
    OutputLockedError,
    OverrideError,
    ParseError,
    PromptflowError,
    ProviderError,
    RecipeFileError,
    ReservedColumnError,
    RunAbortedError,
    StorageError,
    StorageFullError,
    TemplateError,
    ValidationExhaustedError,
)
from ._model import OFFLINE_MODEL, Mode, Model  # noqa: E402
from ._program import Message, PromptProgram  # noqa: E402
from ._ray._vllm import build_vllm_processor  # noqa: E402
from ._recipe._dedup import dedup_rouge_l  # noqa: E402
from ._recipe._dedup_exact import dedup_exact  # noqa: E402
from ._recipe._embed import embed  # noqa: E402
from ._recipe._export import to_training_format  # noqa: E402
from ._recipe._frame_steps import (  # noqa: E402
    choose,
    conversation,
    drop,
    explode,
    filter,
    filter_keywords,
    filter_length,
    rename,
    sample,
    select,
    unnest,
)
from ._recipe._llm_step import TechniqueStep  # noqa: E402
from ._recipe._loop import extend, repeat_until  # noqa: E402
from ._recipe._minhash import dedup_minhash  # noqa: E402
from ._recipe._preference import preference_pairs  # noqa: E402
from ._recipe._recipe import Recipe, RunOptions, RunResult, RunSummary  # noqa: E402
from ._recipe._sampling import sample_bootstrap_prompts  # noqa: E402
from ._recipe._select import select_top_k  # noqa: E402
from ._recipe._semantic import dedup_semantic, select_diverse  # noqa: E402
from ._recipe._step import Contract, FrameStep, Step  # noqa: E402
from ._technique import Technique, technique  # noqa: E402
from .pipelines import dataset_instruction_response  # noqa: E402
from .techniques import (  # noqa: E402
    ClassificationVerdict,
    EvolvedInstruction,
    EvolvedResponse,
    Generation,
    Instance,
    Instances,
    InstructionList,
    NewInstructions,
    Preference,
    Ratings,
    Scores,
    UserAssistantPair,
    bootstrap_instructions,
    complexity_score,
    evol_complexity,
    evol_instruct,
    evol_quality,
    generate_instances,
    genstruct,
    identify_classification,
    pairwise_preference,
    quality_score,
    self_instruct,
    text_generation,
    ultrafeedback,
)

__version__ = "0.1.0"

__all__ = [
    "AttributeValueError",
    "BatchOptions",
    "BudgetExhaustedError",
    "ClassificationVerdict",
    "ColumnOverwriteWarning",
    "CompositionError",
    "Contract",
    "CredentialsInURLError",
    "EngineError",
    "EvolvedInstruction",
    "EvolvedResponse",
    "FrameStep",
    "Generation",
    "InputError",
    "InputFileError",
    "InputTypeError",
    "Instance",
    "Instances",
    "InstructionList",
    "InvalidReplyError",
    "Message",
    "MissingColumnError",
    "Mode",
    "Model",
    "ModelSettingError",
    "NewInstructions",
    "OFFLINE_MODEL",
    "OutputLockedError",
    "OverrideError",
    "ParseError",
    "Preference",
    "PromptProgram",
    "PromptflowError",
    "ProviderError",
    "Ratings",
    "Recipe",
    "RecipeFileError",
    "ReplyCache",
    "ReservedColumnError",
    "RetryPolicy",
    "RunAbortedError",
    "RunOptions",
    "RunResult",
    "RunSummary",
    "Scores",
    "Session",
    "Step",
    "StorageError",
    "StorageFullError",
    "Technique",
    "TechniqueStep",
    "TemplateError",
    "Usage",
    "UserAssistantPair",
    "ValidationExhaustedError",
    "bootstrap_instructions",
    "build_vllm_processor",
    "choose",
    "complexity_score",
    "conversation",
    "dataset_instruction_response",
    "dedup_exact",
    "dedup_minhash",
    "dedup_rouge_l",
    "dedup_semantic",
    "drop",
    "embed",
    "evol_complexity",
    "evol_instruct",
    "evol_quality",
    "explode",
    "extend",
    "filter",
    "filter_keywords",
    "filter_length",
    "generate_instances",
    "genstruct",
    "identify_classification",
    "pairwise_preference",
    "preference_pairs",
    "quality_score",
    "rename",
    "repeat_until",
    "sample",
    "sample_bootstrap_prompts",
    "select",
    "select_diverse",
    "select_top_k",
    "self_instruct",
    "technique",
    "text_generation",
    "to_training_format",
    "ultrafeedback",
    "unnest",
]
