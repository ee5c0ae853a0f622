"""``to_training_format``: instruction/input/output rows as fine-tuning data.

Styles:
- ``"prompt_completion"``: the Self-Instruct paper's format: the prompt is the
  instruction, a blank line, and the input with a blank line when there is one; the
  completion is the output and an end token.
- ``"chat"``: ``messages``, a list of role/content structs (system, user, assistant).
- ``"alpaca"``: ``instruction``, ``input``, ``output``.

>>> import polars as pl
>>> rows = pl.DataFrame({"instruction": ["Add."], "input": ["2, 3"], "output": ["5"]})
>>> to_training_format("prompt_completion").run(rows).row(0)
('Add.\\n\\n2, 3\\n\\n', '5<|endoftext|>')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .._engine._run import RunContext
from ._frame_steps import chat_turn
from ._step import Contract, Step

if TYPE_CHECKING:
    import polars as pl

__all__ = ["TrainingFormat", "to_training_format"]

Style = Literal["prompt_completion", "chat", "alpaca"]
_OUTPUTS: dict[str, tuple[str, ...]] = {
    "prompt_completion": ("prompt", "completion"),
    "chat": ("messages",),
    "alpaca": ("instruction", "input", "output"),
}


@dataclass(frozen=True, repr=False)
class TrainingFormat(Step):
    """Rows of instruction, input and output, in one fine-tuning format."""

    style: Style
    system_prompt: str | None
    end_token: str
    name: str = "to_training_format"

    @property
    def contract(self) -> Contract:
        return Contract(
            needs=frozenset({"instruction", "input", "output"}),
            adds=_OUTPUTS[self.style],
            keeps_only=_OUTPUTS[self.style],
        )

    async def apply(self, frame: pl.DataFrame, run: RunContext) -> pl.DataFrame:
        import polars as pl

        instruction = pl.col("instruction").str.strip_chars()
        given = pl.col("input").fill_null("").str.strip_chars()
        output = pl.col("output").str.strip_chars()
        if self.style == "alpaca":
            return frame.select(instruction, given.alias("input"), output)
        user = pl.when(given != "").then(instruction + "\n\n" + given).otherwise(instruction)
        if self.style == "prompt_completion":
            prompt = pl.when(given != "").then(user + "\n\n").otherwise(instruction + "\n\n")
            return frame.select(
                prompt.alias("prompt"), (output + self.end_token).alias("completion")
            )

        turns = [chat_turn("user", user), chat_turn("assistant", output)]
        if self.system_prompt:
            turns.insert(0, chat_turn("system", pl.lit(self.system_prompt)))
        return frame.select(pl.concat_list(turns).alias("messages"))


def to_training_format(
    style: Style = "prompt_completion",
    *,
    system_prompt: str | None = None,
    end_token: str = "<|endoftext|>",
) -> TrainingFormat:
    """Turn instruction/input/output rows into fine-tuning data of the given *style*."""
    if style not in _OUTPUTS:
        message = f"style must be one of {sorted(_OUTPUTS)}, not {style!r}"
        raise ValueError(message)
    return TrainingFormat(style, system_prompt, end_token)
