"""The technique library: one module per technique."""

from .self_instruct import InstructionList, self_instruct
from .text_generation import Generation, text_generation

__all__ = ["Generation", "InstructionList", "self_instruct", "text_generation"]
