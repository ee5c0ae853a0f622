"""``to_training_format``: instruction/input/output rows as fine-tuning data.

It reads three columns, named by keyword: ``instruction`` (default ``"instruction"``),
``output`` (default ``"output"``) and ``input`` (default: none). Only the columns you map
go into a prompt: a document left in the frame stays out unless you pass
``input="document"``. For the bundled recipes' outputs:

================================  =================================================
recipe                            export
================================  =================================================
``recipes/self_instruct.py``      ``to_training_format("chat", output="generation")``
``dataset_instruction_response``  ``to_training_format("chat", output="response")``
``recipes/self_instruct_bootstrap.py``  ``to_training_format(input="input")``
================================  =================================================

Styles:
- ``"prompt_completion"``: the Self-Instruct paper's format: the prompt is the
  instruction, a blank line, and the input with a blank line when there is one; the
  completion is the output and an end token.
- ``"chat"``: ``messages``, a list of role/content structs (system, user, assistant).
- ``"alpaca"``: ``instruction``, ``input``, ``output`` (``input`` empty when unmapped).
- ``"dpo"``: preference data as TRL's DPO trainer reads it: ``prompt`` (the instruction,
  and the input when mapped), ``chosen`` and ``rejected``, read from the columns named by
  ``chosen`` and ``rejected`` (what ``preference_pairs`` writes). A row without a pair
  has null ``chosen`` and ``rejected``.

>>> import polars as pl
>>> rows = pl.DataFrame({"instruction": ["Add."], "input": ["2, 3"], "output": ["5"]})
>>> to_training_format("prompt_completion", input="input").run(rows).row(0)
('Add.\\n\\n2, 3\\n\\n', '5<|endoftext|>')
>>> to_training_format("prompt_completion").run(rows).row(0)  # input not mapped: left out
('Add.\\n\\n', '5<|endoftext|>')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ._frame_steps import chat_turn
from ._step import Contract, FrameStep

if TYPE_CHECKING:
    import polars as pl

__all__ = ["TrainingFormat", "to_training_format"]

Style = Literal["prompt_completion", "chat", "alpaca", "dpo"]
_OUTPUTS: dict[str, tuple[str, ...]] = {
    "prompt_completion": ("prompt", "completion"),
    "chat": ("messages",),
    "alpaca": ("instruction", "input", "output"),
    "dpo": ("prompt", "chosen", "rejected"),
}


@dataclass(frozen=True, repr=False)
class TrainingFormat(FrameStep):
    """Rows of instruction, (mapped) input and output, in one fine-tuning format."""

    style: Style
    system_prompt: str | None
    end_token: str
    instruction: str = "instruction"
    output: str = "output"
    input: str | None = None
    chosen: str = "chosen"
    rejected: str = "rejected"
    name: str = "to_training_format"

    @property
    def contract(self) -> Contract:
        answers = {self.chosen, self.rejected} if self.style == "dpo" else {self.output}
        mapped = {self.instruction} | answers | ({self.input} if self.input else set())
        return Contract(
            needs=frozenset(mapped),
            adds=_OUTPUTS[self.style],
            keeps_only=_OUTPUTS[self.style],
        )

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        import polars as pl

        instruction = pl.col(self.instruction).str.strip_chars()
        given = (
            pl.col(self.input).cast(pl.String).fill_null("").str.strip_chars()
            if self.input
            else pl.lit("")
        )
        user = pl.when(given != "").then(instruction + "\n\n" + given).otherwise(instruction)
        if self.style == "dpo":
            return frame.select(
                user.alias("prompt"),
                pl.col(self.chosen).str.strip_chars().alias("chosen"),
                pl.col(self.rejected).str.strip_chars().alias("rejected"),
            )
        output = pl.col(self.output).str.strip_chars()
        if self.style == "alpaca":
            return frame.select(
                instruction.alias("instruction"), given.alias("input"), output.alias("output")
            )
        if self.style == "prompt_completion":
            return frame.select(
                (user + "\n\n").alias("prompt"), (output + self.end_token).alias("completion")
            )

        turns = [chat_turn("user", user), chat_turn("assistant", output)]
        if self.system_prompt:
            turns.insert(0, chat_turn("system", pl.lit(self.system_prompt)))
        return frame.select(pl.concat_list(turns).alias("messages"))


def to_training_format(
    style: Style = "prompt_completion",
    *,
    instruction: str = "instruction",
    output: str = "output",
    input: str | None = None,  # noqa: A002 - the name of the column's role in the formats
    system_prompt: str | None = None,
    end_token: str = "<|endoftext|>",
    chosen: str = "chosen",
    rejected: str = "rejected",
) -> TrainingFormat:
    """Turn instruction/input/output rows into fine-tuning data of the given *style*.

    *instruction*, *output* and *input* name the columns to read (for ``"dpo"``,
    *chosen* and *rejected* instead of *output*); the input is read only when named, so
    no other column ever reaches a prompt.
    """
    if style not in _OUTPUTS:
        message = f"style must be one of {sorted(_OUTPUTS)}, not {style!r}"
        raise ValueError(message)
    return TrainingFormat(
        style, system_prompt, end_token, instruction, output, input, chosen, rejected
    )
