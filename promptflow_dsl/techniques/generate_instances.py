"""Input/output instances for a task (Self-Instruct's step 3).

Classification tasks go output-first (``Class label: X`` then the input), so the labels
are not all alike; other tasks go input-first (``Example N``, ``Input:``, ``Output:``).
Both are few-shot completion prompts (our examples; pass the paper's as ``examples``),
sent with temperature 0 and presence penalty 1.5, stopping at ``Example 6`` or ``Task:``.

Input columns: ``instruction``, ``classification`` (optional, a Boolean: map it with
``inputs={"classification": "is_classification"}``). Output columns: ``instances``
(``List(Struct(input, output))``), ``model_name``.
Reference: Wang et al., arXiv 2212.10560 (2022).

>>> generate_instances.parse("Example 1\\nInput: 2, 3\\nOutput: 5\\nExample 2\\nOutput: 7")
Instances(instances=[Instance(input='2, 3', output='5'), Instance(input='', output='7')])
"""

from __future__ import annotations

import functools
import re

from pydantic import BaseModel, ConfigDict, Field

from .._program import PromptProgram
from .._technique import technique

__all__ = [
    "CLASSIFICATION_EXAMPLES",
    "GENERATION_EXAMPLES",
    "Instance",
    "Instances",
    "format_instances",
    "generate_instances",
    "parse_instances",
]

GENERATION_HEADER = (
    "Come up with examples for the following tasks. Try to generate multiple examples when "
    "possible. If the task doesn't require additional input, you can generate the output "
    "directly.\n\n"
)
# Both headers are the paper's, byte for byte (its templates/instance_gen_template.py).
CLASSIFICATION_HEADER = (
    "Given the classification task definition and the class labels, generate an input that "
    "corresponds to each of the class labels. If the task doesn't require input, just "
    "generate possible class labels.\n\n"
)
GENERATION_EXAMPLES = (
    "Task: Add the two numbers.\nExample 1\nInput: 4, 9\nOutput: 13\n"
    "Example 2\nInput: 120, 35\nOutput: 155\n\n"
    "Task: Suggest a title for a blog post about saving money on groceries.\n"
    "Output: Ten Small Habits That Cut Your Grocery Bill\n\n"
)
CLASSIFICATION_EXAMPLES = (
    "Task: Decide whether the review is positive or negative.\n"
    "Class label: Positive\nReview: The soup was warm and the staff were lovely.\n"
    "Class label: Negative\nReview: We waited an hour and the bread was stale.\n\n"
    "Task: Is the number even or odd?\nClass label: Even\nNumber: 48\n"
    "Class label: Odd\nNumber: 17\n\n"
)
_OUTPUT = re.compile(r"Output\s*\d*\s*:")
_INPUT = re.compile(r"Input\s*\d*\s*:")
_EXAMPLE = re.compile(r"Example\s?\d*\.?")


class Instance(BaseModel):
    """One input and its output (the input may be empty)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: str = Field(description="The input of the instance; empty when the task needs none.")
    output: str = Field(description="The correct output (the class label for classification).")


class Instances(BaseModel):
    """The instances generated for a task."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instances: list[Instance] = Field(description="Input/output instances of the task.")


def _input_output(text: str) -> tuple[str, str]:
    if _OUTPUT.search(text):
        before, after = _OUTPUT.split(text, maxsplit=2)[:2]
        given, answer = before.strip(), after.strip()
    else:
        given, answer = "", text.strip()
    answer = _INPUT.split(answer)[0].strip()  # a second pair after the output is dropped
    return re.sub(r"^Input\s*\d*\s*:", "", given).strip(), answer


def _pieces(text: str, *, classification: bool) -> list[tuple[str, str]]:
    if classification:
        if "Class label:" not in text:
            return []
        pairs = []
        for piece in text.split("Class label:")[1:]:
            label, _, given = piece.strip().partition("\n")
            pairs.append((given.strip(), label.strip()))
        return pairs
    text = text.strip()
    if _EXAMPLE.search(text):
        return [_input_output(p) for p in _EXAMPLE.split(text) if p.strip()]
    if _OUTPUT.search(text):
        return [_input_output(text)]
    return []


def parse_instances(
    text: str, *, classification: bool = False, truncated: bool = False
) -> Instances:
    """The paper's instance parsing and filters.

    A reply cut off by the length limit loses its last instance. Instances whose input
    equals the output, whose output is empty, or whose input or output ends with ``:`` are
    dropped; if one input appears with two different outputs the whole task is dropped.
    """
    pairs = _pieces(text, classification=classification)
    if truncated:
        pairs = pairs[:-1]
    pairs = [
        (given, answer)
        for given, answer in pairs
        if given != answer and answer and not given.endswith(":") and not answer.endswith(":")
    ]
    outputs: dict[str, str] = {}
    for given, answer in pairs:
        if given and outputs.setdefault(given, answer) != answer:
            return Instances(instances=[])
    unique = dict.fromkeys(pairs)  # exact duplicates go, the order stays
    return Instances(instances=[Instance(input=i, output=o) for i, o in unique])


def format_instances(result: Instances, *, classification: bool = False) -> str:
    """A reply in the prompt's format (the parser's inverse for fields that hold none of the
    format's words: ``Example``, ``Input``, ``Output``, ``Class label``)."""
    if classification:
        return "".join(f"Class label: {x.output}\n{x.input}\n" for x in result.instances)
    return "".join(
        f"Example {n}\n" + (f"Input: {x.input}\n" if x.input else "") + f"Output: {x.output}\n"
        for n, x in enumerate(result.instances, 1)
    )


@technique(result=Instances, parser=parse_instances, formatter=format_instances)
def generate_instances(
    instruction: str,
    classification: bool | None = None,  # noqa: FBT001 - an input, read from a column
    *,
    examples: str | None = None,
) -> PromptProgram[Instances]:
    """Generate input/output instances for a task (output-first for classification)."""
    classification = bool(classification)
    header = CLASSIFICATION_HEADER if classification else GENERATION_HEADER
    shots = (
        examples
        if examples is not None
        else (CLASSIFICATION_EXAMPLES if classification else GENERATION_EXAMPLES)
    )
    return PromptProgram(
        Instances,
        prompt=f"{header}{shots}Task: {instruction.strip()}\n",
        parser=functools.partial(parse_instances, classification=classification),
        formatter=functools.partial(format_instances, classification=classification),
        decoding="text",
        params={
            "temperature": 0,
            "presence_penalty": 1.5,
            "max_tokens": 350,
            "stop": ["Example 6", "Task:"],
        },
        subject=instruction,
    )
