"""Evaluation: loss/accuracy, probabilities, per-class scores, confusion matrix."""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    from .evaluate import EvaluationResult, evaluate
    from .metrics import confusion_matrix, most_confused, per_class

attach(
    __name__,
    {
        "EvaluationResult": ".evaluate",
        "evaluate": ".evaluate",
        "confusion_matrix": ".metrics",
        "most_confused": ".metrics",
        "per_class": ".metrics",
    },
)

__all__ = ["EvaluationResult", "evaluate", "confusion_matrix", "most_confused", "per_class"]
