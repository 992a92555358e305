"""Pictures of a test result, as a learner asks for them in a notebook: `cs.show_random(result)`,
`cs.show_mistakes(result)`, ...

Each returns a `picture.Picture`: Jupyter shows it as a PNG (no `%matplotlib` needed) and it is the matplotlib
figure otherwise (`.figure`, `.savefig`, `.axes`). The result itself (`EvaluationResult`) only holds numbers;
matplotlib loads on the first drawing only.
"""

from __future__ import annotations

from ..errors import UserError
from ..evaluation.evaluate import EvaluationResult
from ..evaluation.inspection import feature_maps, first_filters, grad_cam, sample, select
from ..i18n import _
from ..training.trained_model import TrainedModel
from .picture import Picture


def show_random(result: EvaluationResult, n: int = 6, seed: int | None = None) -> Picture:
    """`n` random test images with every class's probability, captioned true → predicted (green when
    right, red when wrong); new ones each call unless `seed` is given."""
    return _gallery(result, "random", n, seed)


def show_mistakes(result: EvaluationResult, n: int = 6, seed: int | None = None) -> Picture:
    """Like `show_random`, but only misclassified images."""
    return _gallery(result, "mistakes", n, seed)


def show_top_losses(result: EvaluationResult, n: int = 6) -> Picture:
    """The `n` misclassified test images with the highest loss (lowest probability on the true class) first."""
    return _gallery(result, "top-losses", n, None)


def show_feature_maps(result: EvaluationResult, index: int | None = None) -> Picture:
    """Test image `index` (default: the first correctly classified one) through the network: every
    Conv and Pool layer's output, its Grad-CAM and its class probabilities."""
    from .figures import feature_maps_figure  # matplotlib (~0.3 s) loads only when something is drawn

    trained = _model(result)
    correct = select(result, "correct", 1, seed=0).samples if index is None else ()
    chosen = correct[0] if correct else sample(result, index or 0)
    title = _("feature maps of test image #{index}").format(index=chosen.index)
    figure = feature_maps_figure(
        chosen, feature_maps(trained, chosen.image), grad_cam(trained, chosen.image), title=title
    )
    return Picture(figure, title)


def show_filters(result: EvaluationResult) -> Picture:
    """The first Conv2D layer's kernels (red positive, blue negative weights)."""
    from .figures import filters_figure

    filters = first_filters(_model(result))
    if filters is None:
        raise UserError(_("this model has no Conv2D layer, so it has no filters to show."))
    return Picture(filters_figure(filters), _("first-layer filters"))


def show_grad_cam(result: EvaluationResult, n: int = 4, kind: str = "random", seed: int | None = 0) -> Picture:
    """Grad-CAM of `n` test images chosen as `inspect` chooses them (random, correct, mistakes,
    top-losses): where the evidence for the predicted class lies, red being strongest."""
    from .figures import grad_cam_figure

    trained = _model(result)
    chosen = select(result, kind, n, seed=seed)
    cams = [grad_cam(trained, s.image) for s in chosen.samples]
    return Picture(grad_cam_figure(chosen.samples, cams, _("Grad-CAM: {title}").format(title=chosen.title)), "Grad-CAM")


def _model(result: EvaluationResult) -> TrainedModel:
    if result.trained is None:
        raise UserError(_("this result does not know its model; make it with cs.evaluate(model, data)."))
    return result.trained


def _gallery(result: EvaluationResult, kind: str, n: int, seed: int | None) -> Picture:
    from .figures import gallery

    return Picture(gallery(result, kind, n, seed), kind)
