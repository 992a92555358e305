"""The result `cs.evaluate` returns: an `EvaluationResult` that can also draw itself in a notebook.

Imports flow one way (evaluation never imports report), so the drawing methods cannot live on
`EvaluationResult`; they live on this subclass in the report layer, which every producer of a user-facing
result (`cs.evaluate`, `cs.train`, the report's run view) builds. matplotlib loads on the first drawing only.
"""

from __future__ import annotations

from dataclasses import fields

from ..data.dataset import Dataset
from ..display import Picture
from ..errors import UserError
from ..evaluation.evaluate import EvaluationResult, measure
from ..evaluation.inspection import feature_maps, first_filters, grad_cam, sample, select
from ..i18n import _
from ..training.trained_model import TrainedModel


class DrawableResult(EvaluationResult):
    """`EvaluationResult` plus pictures of it. Each `show_*` returns a `display.Picture`: Jupyter shows it as
    a PNG (no `%matplotlib` needed) and it is the matplotlib figure otherwise (`.figure`, `.savefig`, `.axes`)."""

    def show_random(self, n: int = 6, seed: int | None = None) -> Picture:
        """`n` random test images with every class's probability, captioned true → predicted (green when
        right, red when wrong); new ones each call unless `seed` is given."""
        return self._gallery("random", n, seed)

    def show_mistakes(self, n: int = 6, seed: int | None = None) -> Picture:
        """Like `show_random`, but only misclassified images."""
        return self._gallery("mistakes", n, seed)

    def show_top_losses(self, n: int = 6) -> Picture:
        """The `n` misclassified test images with the highest loss (lowest probability on the true class) first."""
        return self._gallery("top-losses", n, None)

    def show_feature_maps(self, index: int | None = None) -> Picture:
        """Test image `index` (default: the first correctly classified one) through the network: every
        Conv and Pool layer's output, its Grad-CAM and its class probabilities."""
        from .figures import feature_maps_figure  # matplotlib (~0.3 s) loads only when something is drawn

        trained = self._model()
        correct = select(self, "correct", 1, seed=0).samples if index is None else ()
        chosen = correct[0] if correct else sample(self, index or 0)
        title = _("feature maps of test image #{index}").format(index=chosen.index)
        figure = feature_maps_figure(
            chosen, feature_maps(trained, chosen.image), grad_cam(trained, chosen.image), title=title
        )
        return Picture(figure, title)

    def show_filters(self) -> Picture:
        """The first Conv2D layer's kernels (red positive, blue negative weights)."""
        from .figures import filters_figure

        filters = first_filters(self._model())
        if filters is None:
            raise UserError(_("this model has no Conv2D layer, so it has no filters to show."))
        return Picture(filters_figure(filters), _("first-layer filters"))

    def show_grad_cam(self, n: int = 4, kind: str = "random", seed: int | None = 0) -> Picture:
        """Grad-CAM of `n` test images chosen as `inspect` chooses them (random, correct, mistakes,
        top-losses): where the evidence for the predicted class lies, red being strongest."""
        from .figures import grad_cam_figure

        trained = self._model()
        chosen = select(self, kind, n, seed=seed)
        cams = [grad_cam(trained, s.image) for s in chosen.samples]
        return Picture(
            grad_cam_figure(chosen.samples, cams, _("Grad-CAM: {title}").format(title=chosen.title)), "Grad-CAM"
        )

    def _model(self) -> TrainedModel:
        if self.trained is None:
            raise UserError(_("this result does not know its model; make it with cs.evaluate(model, data)."))
        return self.trained

    def _gallery(self, kind: str, n: int, seed: int | None) -> Picture:
        from .figures import gallery

        return Picture(gallery(self, kind, n, seed), kind)


def drawable(result: EvaluationResult) -> DrawableResult:
    """The same result, with the drawing methods."""
    if isinstance(result, DrawableResult):
        return result
    return DrawableResult(**{f.name: getattr(result, f.name) for f in fields(result) if f.init})


def evaluate(trained: TrainedModel, data: Dataset) -> DrawableResult:
    """Loss and accuracy like `model.evaluate`, with the probabilities kept for everything after
    (see `evaluation.evaluate.measure`); the result can draw itself (`show_random`, `show_mistakes`, ...)."""
    return drawable(measure(trained, data))
