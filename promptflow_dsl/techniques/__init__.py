"""The technique library: one module per technique."""

from .bootstrap_instructions import NewInstructions, bootstrap_instructions
from .evol_instruct import EvolvedInstruction, evol_instruct
from .genstruct import UserAssistantPair, genstruct
from .self_instruct import InstructionList, self_instruct
from .text_generation import Generation, text_generation

__all__ = [
    "EvolvedInstruction",
    "NewInstructions",
    "Generation",
    "InstructionList",
    "UserAssistantPair",
    "bootstrap_instructions",
    "evol_instruct",
    "genstruct",
    "self_instruct",
    "text_generation",
]
