"""Ready-made recipes, built by functions with the reference implementations' attributes."""

from .dataset_instruction_response import dataset_instruction_response

__all__ = ["dataset_instruction_response"]
