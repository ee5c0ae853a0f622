"""The technique library: one module per technique."""

from .bootstrap_instructions import NewInstructions, bootstrap_instructions
from .complexity_score import Scores, complexity_score
from .evol_complexity import evol_complexity
from .evol_instruct import EvolvedInstruction, evol_instruct
from .evol_quality import EvolvedResponse, evol_quality
from .generate_instances import Instance, Instances, generate_instances
from .genstruct import UserAssistantPair, genstruct
from .identify_classification import ClassificationVerdict, identify_classification
from .pairwise_preference import Preference, pairwise_preference
from .quality_score import quality_score
from .self_instruct import InstructionList, self_instruct
from .text_generation import Generation, text_generation
from .ultrafeedback import Ratings, ultrafeedback

__all__ = [
    "ClassificationVerdict",
    "EvolvedInstruction",
    "EvolvedResponse",
    "Generation",
    "Instance",
    "Instances",
    "InstructionList",
    "NewInstructions",
    "Preference",
    "Ratings",
    "Scores",
    "UserAssistantPair",
    "bootstrap_instructions",
    "complexity_score",
    "evol_complexity",
    "evol_instruct",
    "evol_quality",
    "generate_instances",
    "genstruct",
    "identify_classification",
    "pairwise_preference",
    "quality_score",
    "self_instruct",
    "text_generation",
    "ultrafeedback",
]
