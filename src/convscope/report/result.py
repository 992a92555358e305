"""The result `cs.evaluate` returns: an `EvaluationResult` that can also draw itself in a notebook.

Imports flow one way (evaluation never imports report), so the drawing methods cannot live on
`EvaluationResult`; they live on this subclass in the report layer, which every producer of a user-facing
result (`cs.evaluate`, `cs.train`, the report's run view) builds. matplotlib loads on the first drawing only.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from ..data.dataset import Dataset
from ..evaluation.evaluate import EvaluationResult
from ..evaluation.evaluate import evaluate as _evaluate
from ..training.trained_model import TrainedModel

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class DrawableResult(EvaluationResult):
    """`EvaluationResult` plus notebook figures (matplotlib, no pyplot state)."""

    def show_random(self, n: int = 6, seed: int | None = None) -> Figure:
        """A matplotlib figure of `n` random test images with their class probabilities (new ones each call
        unless `seed` is given)."""
        from .figures import gallery  # matplotlib (~0.3 s) loads only when something is drawn

        return gallery(self, "random", n, seed)

    def show_mistakes(self, n: int = 6, seed: int | None = None) -> Figure:
        """Like `show_random`, but only misclassified images."""
        from .figures import gallery

        return gallery(self, "mistakes", n, seed)


def drawable(result: EvaluationResult) -> DrawableResult:
    """The same result, with the drawing methods."""
    if isinstance(result, DrawableResult):
        return result
    return DrawableResult(**{f.name: getattr(result, f.name) for f in fields(result) if f.init})


def evaluate(trained: TrainedModel, data: Dataset) -> DrawableResult:
    """Loss and accuracy like `model.evaluate`, with the probabilities kept for everything after
    (see `evaluation.evaluate`); the result can draw itself (`show_random`, `show_mistakes`)."""
    return drawable(_evaluate(trained, data))
