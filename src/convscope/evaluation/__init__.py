"""Evaluation: loss/accuracy, probabilities, per-class scores, confusion matrix."""

from .evaluate import EvaluationResult, evaluate
from .metrics import confusion_matrix, most_confused, per_class

__all__ = ["EvaluationResult", "evaluate", "confusion_matrix", "most_confused", "per_class"]
