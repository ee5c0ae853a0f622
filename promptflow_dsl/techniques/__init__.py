"""The technique library: one module per technique."""

from .evol_instruct import EvolvedInstruction, evol_instruct
from .genstruct import UserAssistantPair, genstruct
from .self_instruct import InstructionList, self_instruct
from .text_generation import Generation, text_generation

__all__ = [
    "EvolvedInstruction",
    "Generation",
    "InstructionList",
    "UserAssistantPair",
    "evol_instruct",
    "genstruct",
    "self_instruct",
    "text_generation",
]
