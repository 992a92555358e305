"""Looking inside a trained model: which test images to show, and what the network computed on them.

Pure functions on an `EvaluationResult` (selection) or a `TrainedModel` plus one raw image
(feature maps, first-layer filters, Grad-CAM). They return small dataclasses and numpy arrays;
drawing them is the job of `terminal.py` (text) and `convscope.presentation.figures` (matplotlib).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..i18n import _
from ..models.network import Network
from ..training.trained_model import TrainedModel
from .evaluate import EvaluationResult

_EPS = 1e-7  # the same clipping `evaluate` uses, so a sample's loss adds up to the reported test loss
FEATURE_MAP_TYPES = ("Conv2D", "MaxPool2D", "AveragePooling2D")


@dataclass(frozen=True)
class Sample:
    """One image with what the model made of it. `label` is None for an image without a known class."""

    index: int | None  # position in the test set; None for an image file
    image: np.ndarray  # raw (H, W, C), as the dataset stores it
    probabilities: np.ndarray  # (K,), sums to 1
    class_names: tuple[str, ...]
    label: int | None = None

    @property
    def predicted(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def predicted_name(self) -> str:
        return self.class_names[self.predicted]

    @property
    def true_name(self) -> str | None:
        return None if self.label is None else self.class_names[self.label]

    @property
    def confidence(self) -> float:
        """The probability of the predicted class."""
        return float(self.probabilities[self.predicted])

    @property
    def correct(self) -> bool | None:
        return None if self.label is None else self.predicted == self.label

    @property
    def loss(self) -> float | None:
        """Cross-entropy of this one image: large when the true class got a small probability."""
        if self.label is None:
            return None
        return float(-np.log(np.clip(self.probabilities[self.label], _EPS, 1.0)))

    @property
    def caption(self) -> str:
        """`true → predicted (p%)`, the fastai-style one-line caption (`predicted X (p%)` without a label)."""
        if self.label is None:
            return _("predicted {name} ({p})").format(name=self.predicted_name, p=percent(self.confidence))
        return f"{self.true_name} → {self.predicted_name} ({percent(self.confidence)})"

    @property
    def verdict(self) -> str:
        """The course's word for the prediction, besides the colour: correct or wrong."""
        if self.correct is None:
            return _("no label")
        return _("correct") if self.correct else _("wrong")

    def percentages(self) -> list[tuple[str, str]]:
        """Every class with its probability as the course prints it: ("A", "97.3%")."""
        return [(name, percent(float(p))) for name, p in zip(self.class_names, self.probabilities)]


def percent(p: float) -> str:
    """A probability as a percentage with one decimal: 0.9731 -> '97.3%'."""
    return f"{p:.1%}"


@dataclass(frozen=True)
class Selection:
    """What was asked for (for titles and file names) and the samples it gave."""

    kind: str  # random | correct | mistakes | top-losses | index
    title: str
    samples: tuple[Sample, ...]


def sample(result: EvaluationResult, index: int) -> Sample:
    """Test image `index` of an evaluation."""
    n = len(result.labels)
    if not 0 <= index < n:
        raise UserError(
            _("--index {index} is out of range: the test set has {n} images (0 to {last}).").format(
                index=index, n=n, last=n - 1
            )
        )
    return Sample(
        int(index), result.images[index], result.probabilities[index], result.class_names, int(result.labels[index])
    )


def class_index(class_names: tuple[str, ...], name: str) -> int:
    if name in class_names:
        return class_names.index(name)
    raise UserError(
        _("class {name!r} is not one of the model's classes: {class_names}.").format(
            name=name, class_names=", ".join(class_names)
        )
    )


def losses(result: EvaluationResult) -> np.ndarray:
    """Per-image cross-entropy, clipped like `evaluate` (its mean is the test loss)."""
    picked = result.probabilities[np.arange(len(result.labels)), result.labels]
    return -np.log(np.clip(picked, _EPS, 1.0))


def select(
    result: EvaluationResult,
    kind: str = "random",
    n: int = 5,
    *,
    class_name: str | None = None,
    index: int | None = None,
    seed: int | None = 0,
) -> Selection:
    """Pick test images to look at.

    - `random`: n images drawn without replacement with `seed` (the same seed shows the same images,
      None a fresh draw each call);
    - `correct`: n correctly classified images, drawn the same way;
    - `mistakes`: n misclassified images, drawn the same way;
    - `top-losses`: the n misclassified images with the highest loss (the lowest probability on the true class) first;
    - `index`: the one image `index`.
    `class_name` keeps only images whose true class is that class.
    """
    if kind == "index":
        if index is None:
            raise UserError(_("choose the image with --index I."))
        if class_name is not None:
            raise UserError(_("--class picks among several images; with --index the image is already chosen."))
        one = sample(result, index)
        return Selection("index", _("test image #{index}").format(index=index), (one,))
    if n < 1:
        raise UserError(_("the number of images to show must be at least 1, got {n}.").format(n=n))
    pool = np.arange(len(result.labels))
    if class_name is not None:
        pool = pool[result.labels == class_index(result.class_names, class_name)]
    if kind in ("mistakes", "top-losses"):
        pool = pool[result.predictions[pool] != result.labels[pool]]
    elif kind == "correct":
        pool = pool[result.predictions[pool] == result.labels[pool]]
    titles = {  # (all classes, one class)
        "random": (_("random test images"), _("random test images of class {name}")),
        "correct": (_("correctly classified test images"), _("correctly classified test images of class {name}")),
        "mistakes": (_("misclassified test images"), _("misclassified test images of class {name}")),
        "top-losses": (
            _("top losses: highest loss first"),
            _("top losses of class {name}: highest loss first"),
        ),
    }
    if kind not in titles:
        raise UserError(
            _("unknown selection {kind!r}; use random, correct, mistakes, top-losses or index.").format(kind=kind)
        )
    title = titles[kind][class_name is not None].format(name=class_name)
    if kind == "top-losses":
        order = np.argsort(-losses(result)[pool], kind="stable")
        chosen = pool[order[:n]]
    else:
        rng = np.random.default_rng(seed)
        chosen = rng.choice(pool, size=min(n, len(pool)), replace=False) if len(pool) else pool
    samples = tuple(sample(result, int(i)) for i in chosen)
    return Selection(kind, title, samples)


def predict_image(trained: TrainedModel, image: np.ndarray) -> Sample:
    """A sample for an image that is not in the test set (an image file): no true class."""
    if tuple(image.shape) != tuple(trained.input_shape):
        raise UserError(
            _("image is {shape} but the model expects {input_shape}.").format(
                shape=tuple(image.shape), input_shape=tuple(trained.input_shape)
            )
        )
    probabilities = trained.predict_proba(image[None])[0]
    return Sample(None, image, probabilities, trained.class_names, None)


# --- what the network computes --------------------------------------------------------------


@dataclass(frozen=True)
class FeatureMap:
    layer: str
    type: str
    output_shape: tuple[int, int, int]  # (H, W, C), Keras order, as the summary prints it
    values: np.ndarray  # (C, H, W) float32 activations for one image


@dataclass(frozen=True)
class Filters:
    layer: str
    weights: np.ndarray  # (filters, in_channels, kh, kw)


@dataclass(frozen=True)
class GradCam:
    layer: str  # the convolution whose activations are weighted
    class_index: int
    class_name: str
    probability: float
    heatmap: np.ndarray  # (H, W) in [0, 1], the input image's size


def _network(trained: TrainedModel) -> Network:
    if not isinstance(trained.model, Network):
        raise UserError(_("feature maps, filters and Grad-CAM need a model built from a preset or spec."))
    return trained.model


def _input(trained: TrainedModel, image: np.ndarray) -> torch.Tensor:
    if tuple(image.shape) != tuple(trained.input_shape):
        raise UserError(
            _("image is {shape} but the model expects {input_shape}.").format(
                shape=tuple(image.shape), input_shape=tuple(trained.input_shape)
            )
        )
    return trained.scaler.transform(image[None]).to(trained.device)


def image_layers(trained: TrainedModel, types: tuple[str, ...] = FEATURE_MAP_TYPES) -> list[str]:
    return [info.name for info in _network(trained).info if info.type in types]


@torch.no_grad()
def feature_maps(trained: TrainedModel, image: np.ndarray) -> list[FeatureMap]:
    """The output of every Conv and Pool layer for one raw (H, W, C) image, in layer order."""
    network = _network(trained)
    network.eval()
    values = network.activations(_input(trained, image))
    return [
        FeatureMap(
            info.name,
            info.type,
            cast(tuple[int, int, int], tuple(info.output_shape)),
            values[info.name][0].float().cpu().numpy(),
        )
        for info in network.info
        if info.type in FEATURE_MAP_TYPES
    ]


def first_filters(trained: TrainedModel) -> Filters | None:
    """The kernels of the first Conv2D layer, which look straight at pixels; None for a model without one."""
    network = _network(trained)
    for info in network.info:
        if info.type == "Conv2D":
            conv = next(m for m in network.blocks[info.name].modules() if isinstance(m, nn.Conv2d))
            return Filters(info.name, conv.weight.detach().float().cpu().numpy())
    return None


def grad_cam(trained: TrainedModel, image: np.ndarray, class_index: int | None = None) -> GradCam | None:
    """Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class lies.

    A layer's channels are weighted by the average gradient of the class logit over each channel,
    summed, passed through ReLU (only evidence *for* the class) and resized to the image.
    `class_index` defaults to the predicted class. The layer is the last Conv2D; when that map
    has no positive evidence at all (a BatchNormalization after it can flip signs), the last layer
    with an image-shaped output, nearer the classifier, is used instead and named in the result.
    None for a model without Conv2D.
    """
    network = _network(trained)
    convs = image_layers(trained, ("Conv2D",))
    if not convs:
        return None
    last_spatial = [info.name for info in network.info if len(info.output_shape) == 3][-1]
    network.eval()
    x = _input(trained, image)
    with torch.enable_grad():
        values = network.activations(x)
        logits = values[network.output_name].float()
        target = int(logits[0].argmax()) if class_index is None else int(class_index)
        layers = list(dict.fromkeys([convs[-1], last_spatial]))
        gradients = torch.autograd.grad(logits[0, target], [values[name] for name in layers])
    probability = float(torch.softmax(logits[0].detach(), dim=0)[target])
    heatmap = np.zeros(image.shape[:2], np.float32)
    for layer, gradient in zip(layers, gradients):
        activation = values[layer].detach()
        weights = gradient.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).float()
        cam = F.interpolate(cam, size=tuple(image.shape[:2]), mode="bilinear", align_corners=False)[0, 0]
        peak = float(cam.max())
        if peak > 0:
            heatmap = (cam / peak).cpu().numpy().astype(np.float32)
            break
    return GradCam(layer, target, trained.class_names[target], probability, heatmap)


# --- arranging many small maps for display ---------------------------------------------------


def mosaic(values: np.ndarray, columns: int | None = None) -> np.ndarray:
    """(C, H, W) maps -> one 2-D array of tiles separated by NaN gaps, each tile scaled to [0, 1] on its own.

    Per-tile scaling shows each channel's pattern; a channel that is constant (often a dead
    ReLU) comes out all zero, which is itself worth seeing.
    """
    c, h, w = values.shape
    rows, columns = tile_grid(c, h, w, columns)
    out = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan, dtype=np.float32)
    lo = values.reshape(c, -1).min(axis=1)
    hi = values.reshape(c, -1).max(axis=1)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = (values - lo[:, None, None]) / span[:, None, None]
    for i in range(c):
        r, col = divmod(i, columns)
        out[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = scaled[i]
    return out


def tile_grid(c: int, h: int, w: int, columns: int | None = None) -> tuple[int, int]:
    """Rows and columns of tiles: wider than tall, so a layer's grid fits a page's width."""
    if columns is None:
        target = np.sqrt(c * h / w) * 2.8
        divisors = [d for d in range(1, c + 1) if c % d == 0 and target / 1.5 <= d <= target * 1.5]
        # a divisor of the channel count fills the last row; otherwise the nearest whole number
        columns = min(divisors, key=lambda d: abs(d - target)) if divisors else int(np.ceil(target))
    columns = max(1, min(columns, c))
    return -(-c // columns), columns
