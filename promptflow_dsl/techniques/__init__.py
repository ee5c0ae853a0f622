"""The technique library: one module per technique."""

from .bootstrap_instructions import NewInstructions, bootstrap_instructions
from .evol_complexity import evol_complexity
from .evol_instruct import EvolvedInstruction, evol_instruct
from .evol_quality import EvolvedResponse, evol_quality
from .generate_instances import Instance, Instances, generate_instances
from .genstruct import UserAssistantPair, genstruct
from .identify_classification import ClassificationVerdict, identify_classification
from .self_instruct import InstructionList, self_instruct
from .text_generation import Generation, text_generation

__all__ = [
    "ClassificationVerdict",
    "EvolvedInstruction",
    "EvolvedResponse",
    "Generation",
    "Instance",
    "Instances",
    "InstructionList",
    "NewInstructions",
    "UserAssistantPair",
    "bootstrap_instructions",
    "evol_complexity",
    "evol_instruct",
    "evol_quality",
    "generate_instances",
    "genstruct",
    "identify_classification",
    "self_instruct",
    "text_generation",
]
