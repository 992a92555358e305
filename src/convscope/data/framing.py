"""The input contract: how the training images are framed, learned at fit time, applied to every new picture.

A model trained on MNIST has only seen light digits on black, scaled so that their longest side
spans about 20 of 28 pixels and centred by their centre of mass; one trained on notMNIST has only
seen white letters stretched to fill the whole frame. A user's picture (dark ink on white paper,
any size, anywhere in the image) has to be brought into the same shape before the model can read
it. `learn_contract` measures the training images once; `frame` applies what it measured to any
image; `model_input` decodes a file or upload and frames it: the one function behind `convscope
predict`, `inspect --image` and every server endpoint.

    polarity   the background side, from the intensity histogram's dominant mode (not the border:
               notMNIST glyphs touch their border)
    framing    "fill": the ink box stretched to the frame; "fit": the box's longest side scaled to a
               measured fraction of the frame and centred by mass or box; "none": resized whole
               (photos, or data without a consistent framing)
    threshold  where ink starts, as a fraction of the way from an image's background to its ink
               level, so that the same rule finds the ink on grey paper and on black
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import Literal, NamedTuple

import numpy as np
from PIL import Image

from ..errors import UserError
from ..i18n import _
from .images import read_image

LEARNED = "learned from the training images at fit time"
Background = Literal["dark", "light"]
Framing = Literal["fill", "fit", "none"]
Centre = Literal["mass", "box"]
FRAMINGS: tuple[str, ...] = ("fill", "fit", "none")

# What is measured and how decisions are taken; each number is a property of the training set, not a tuning knob.
_SAMPLE = 1000  # images measured: the statistics settle long before (a few hundred would do)
# ...and at most this many pixels in all, so large images (256 x 256 from a memory map) stay a few MB
_SAMPLE_PIXELS = 2_000_000
_BINS = 16  # histogram bins over the pixel range for the dominant mode
_MODE_SHARE = 0.25  # a background is one level holding at least this share of all pixels...
_MARGIN = 1.1  # ...and at least this many times the highest level on the other side of mid-grey
_INK_LEVEL = 99.9  # percentile of an image's ink-bright values taken as its ink level
_MIN_CONTRAST = 0.1  # ink level minus background level, as a share of the range: below it there is no ink
_FILL = 0.85  # "fill" when the median ink box covers at least this share of both sides of the frame
_FIT_SPREAD = 0.15  # "fit" when the longest side's share of the frame varies by at most this (interquartile)...
_CENTRED = 0.06  # ...and the glyphs' centre (mass or box) lies this close to the frame's centre (median)
_TOLERANCE = (1.0, 99.0)  # percentiles of the training framing inside which a frame-sized input is left as it is


@dataclass(frozen=True)
class InputContract:
    """How the training images look; stored in the run as JSON (`to_dict` / `from_dict`)."""

    background: Background | None  # None: no dominant background level (photos); never auto-invert
    framing: Framing
    threshold: float  # ink starts this far from the background level towards the ink level (0..1)
    pixel_range: tuple[float, float]  # the training data's units
    fraction: float = 1.0  # "fit": the ink box's longest side as a share of the frame
    centre: Centre = "mass"  # "fit": what is put in the frame's middle
    fraction_range: tuple[float, float] = (0.0, 1.0)  # 1st..99th percentile of the training fractions
    offset_limit: float = 0.0  # 99th percentile of the training centres' distance from the middle (frame shares)
    source: str = LEARNED

    @property
    def threshold_value(self) -> float:
        """The ink threshold in the training data's units, for an image with the training set's full contrast."""
        lo, hi = self.pixel_range
        return lo + self.threshold * (hi - lo) if self.background != "light" else hi - self.threshold * (hi - lo)

    @property
    def polarity(self) -> str:
        if self.background == "dark":
            return _("light ink on a dark background")
        if self.background == "light":
            return _("dark ink on a light background")
        return _("no single background (never inverted)")

    def describe(self) -> str:
        """One line for people: what is done to a new picture."""
        if self.framing == "fill":
            how = _("the ink's bounding box stretched to fill the frame")
        elif self.framing == "fit" and self.centre == "mass":
            how = _(
                "the ink's longest side scaled to {fraction:.0%} of the frame, centred by its mass (centre of mass)"
            )
        elif self.framing == "fit":
            how = _("the ink's longest side scaled to {fraction:.0%} of the frame, centred by its box (bounding box)")
        else:
            how = _("the whole image resized to the frame")
        how = how.format(fraction=self.fraction)
        return _("{polarity}; {how}; ink threshold {value:g} ({threshold:.0%} of the way to the ink)").format(
            polarity=self.polarity, how=how, value=self.threshold_value, threshold=self.threshold
        )

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "pixel_range": list(self.pixel_range),
            "fraction_range": list(self.fraction_range),
            "threshold_value": self.threshold_value,
            "polarity": self.polarity,
            "description": self.describe(),
        }

    @classmethod
    def from_dict(cls, value: dict) -> InputContract:
        fields = {k: value[k] for k in cls.__dataclass_fields__ if k in value}
        for key in ("pixel_range", "fraction_range"):
            if key in fields:
                fields[key] = tuple(float(v) for v in fields[key])
        return cls(**fields)


def unframed(pixel_range: tuple[float, float], source: str) -> InputContract:
    """The contract of a run that stored none and kept no test images: resize whole, never invert (what 0.x did)."""
    return InputContract(None, "none", 0.5, (float(pixel_range[0]), float(pixel_range[1])), source=source)


# --- learning ---------------------------------------------------------------------------------


def learn_contract(images, pixel_range: tuple[float, float], source: str = LEARNED) -> InputContract:
    """Measure polarity, framing and the ink threshold of (N, H, W, C) training images (arrays or lazy images)."""
    lo, hi = float(pixel_range[0]), float(pixel_range[1])
    n = len(images)
    if n == 0:
        return unframed((lo, hi), "no training images to learn from")
    per_image = int(np.prod(images.shape[1:3])) if len(images.shape) >= 3 else 1
    sample = min(n, _SAMPLE, max(32, _SAMPLE_PIXELS // max(per_image, 1)))
    picked = np.unique(np.linspace(0, n - 1, sample).round().astype(np.int64))
    gray = _gray(np.asarray(images[picked]), lo, hi)  # one read, also for streamed images and memory maps
    background = dominant_background(gray)
    threshold = 0.5  # halfway between background and ink: the edge of an anti-aliased stroke
    if background is None:
        return InputContract(None, "none", threshold, (lo, hi), source=source)
    ink = gray if background == "dark" else 1.0 - gray
    measured = [measure(image, threshold) for image in ink]
    boxes = np.array([b for b in measured if b is not None])
    if len(boxes) < max(1, len(ink) // 2):  # mostly blank images: nothing consistent to frame
        return InputContract(background, "none", threshold, (lo, hi), source=source)
    height, width, longest, mass_offset, box_offset = boxes.T
    if np.median(height) >= _FILL and np.median(width) >= _FILL:
        return InputContract(
            background,
            "fill",
            threshold,
            (lo, hi),
            fraction_range=(float(np.percentile(np.minimum(height, width), _TOLERANCE[0])), 1.0),
            source=source,
        )
    q1, q3 = np.percentile(longest, [25, 75])
    centre: Centre = "mass" if np.median(mass_offset) <= np.median(box_offset) else "box"
    offsets = mass_offset if centre == "mass" else box_offset
    if q3 - q1 <= _FIT_SPREAD and np.median(offsets) <= _CENTRED:
        return InputContract(
            background,
            "fit",
            threshold,
            (lo, hi),
            fraction=float(np.median(longest)),
            centre=centre,
            fraction_range=(float(np.percentile(longest, _TOLERANCE[0])), float(np.percentile(longest, _TOLERANCE[1]))),
            offset_limit=float(np.percentile(offsets, _TOLERANCE[1])),
            source=source,
        )
    return InputContract(background, "none", threshold, (lo, hi), source=source)


def dominant_background(gray: np.ndarray) -> Background | None:
    """'dark' or 'light' when one intensity level dominates the pooled histogram of the images.

    Pooled, not per image: a bold notMNIST letter stretched to its frame is mostly white, yet the set's
    dominant level is still its black background. The winner must hold a good share of all pixels and
    clearly beat the other side's highest level, or the set has no single background (photos, mixed sets).
    """
    counts = _level_counts(gray, _BINS)
    total, best = counts.sum(), int(counts.argmax())
    if total == 0 or counts[best] < _MODE_SHARE * total:
        return None
    light = best >= _BINS // 2
    other = counts[: _BINS // 2] if light else counts[_BINS // 2 :]
    if counts[best] < _MARGIN * other.max():
        return None
    return "light" if light else "dark"


def _background_level(ink: np.ndarray) -> float:
    """An ink-bright image's background level: its most frequent level below mid-grey (0 when it has none)."""
    dark = ink[ink < 0.5]
    if dark.size == 0:
        return 0.0
    return (int(_level_counts(dark, _BINS // 2).argmax()) + 0.5) / _BINS


def _level_counts(values: np.ndarray, bins: int) -> np.ndarray:
    """`np.histogram(values, bins, range=(0, bins / _BINS))` for values in that range, at a tenth of its cost
    (a served image is framed per request). The same counts, not close ones: the bin edges k / _BINS are powers
    of two apart, so `value * _BINS` is exact and its floor is the bin; the top edge goes to the last bin."""
    index = (values.ravel() * _BINS).astype(np.int64)
    return np.bincount(np.clip(index, 0, bins - 1), minlength=bins)


def _mode_levels(gray: np.ndarray) -> np.ndarray:
    """(N, H, W) in [0, 1] -> each image's most frequent level (the centre of its fullest histogram bin)."""
    bins = np.minimum((gray.reshape(len(gray), -1) * _BINS).astype(np.int64), _BINS - 1)
    counts = np.stack([np.bincount(row, minlength=_BINS) for row in bins])
    return (counts.argmax(axis=1) + 0.5) / _BINS


def measure(
    ink: np.ndarray, threshold: float, found: InkBox | None = None
) -> tuple[float, float, float, float, float] | None:
    """One ink-bright (H, W) image in [0, 1] -> box height and width, longest side (frame shares), and how far
    its centre of mass and its box centre lie from the frame's middle (frame shares); None without ink.
    `found`: the image's `ink_box`, when the caller has it already."""
    if found is None:
        found = ink_box(ink, threshold)
    if found is None:
        return None
    (top, left, bottom, right), weights = found.box, found.weights
    h, w = ink.shape
    bh, bw = (bottom - top) / h, (right - left) / w
    cy, cx = _centre_of_mass(weights)
    middle = ((h - 1) / 2, (w - 1) / 2)
    mass = float(np.hypot((cy - middle[0]) / h, (cx - middle[1]) / w))
    box = float(np.hypot(((top + bottom - 1) / 2 - middle[0]) / h, ((left + right - 1) / 2 - middle[1]) / w))
    return bh, bw, max(bh, bw), mass, box


class InkBox(NamedTuple):
    """Where one image's ink is, and the level that decided it (reused to fill the frame's background)."""

    box: tuple[int, int, int, int]  # (top, left, bottom, right), end-exclusive
    weights: np.ndarray  # ink-bright values above the image's own background level
    cut: float  # pixels above it are ink, the rest paper: the threshold between background and ink level


def ink_box(ink: np.ndarray, threshold: float) -> InkBox | None:
    """The box of the pixels past the threshold in an ink-bright (H, W) image; None when it has no ink."""
    background = _background_level(ink)
    level = float(np.percentile(ink, _INK_LEVEL))
    if level - background < _MIN_CONTRAST:
        return None
    cut = background + threshold * (level - background)
    mask = ink > cut
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    weights = np.clip(ink - background, 0.0, None)
    return InkBox((int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1), weights, cut)


def _centre_of_mass(weights: np.ndarray) -> tuple[float, float]:
    """The weighted mean row and column of an (H, W) image (its middle when it has no weight). Written here, not
    scipy's `ndimage.center_of_mass`: the same numbers, but that one's import and per-call cost were half of
    `learn_contract`, which every fit runs on 1,000 images (BENCHMARKS.md, issue 28)."""
    weights = np.asarray(weights, dtype=np.float64)  # as scipy sums, whatever the image's dtype
    total = float(weights.sum())
    if total <= 0:
        return (weights.shape[0] - 1) / 2, (weights.shape[1] - 1) / 2
    rows, cols = np.arange(weights.shape[0]), np.arange(weights.shape[1])
    return float(weights.sum(axis=1) @ rows / total), float(weights.sum(axis=0) @ cols / total)


def ink_of(images: np.ndarray, contract: InputContract) -> np.ndarray:
    """(..., H, W, C) training-like images -> ink-bright grey in [0, 1] (ink high, background low)."""
    gray = _gray(images, *contract.pixel_range)
    return 1.0 - gray if contract.background == "light" else gray


def _gray(images: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(N, H, W, C) or (H, W, C) in the data's units -> channel-mean grey in [0, 1]."""
    return np.clip((np.asarray(images, dtype=np.float64).mean(axis=-1) - lo) / (hi - lo), 0.0, 1.0)


# --- applying ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Framed:
    image: np.ndarray  # (H, W, C) in the input's dtype and units, shaped like the model input
    inverted: bool
    framing: Framing  # what was applied ("none" also when an image had no ink to frame)
    kept: bool = False  # already frame-sized and framed like the training images: passed through unchanged


def parse_invert(value: str | bool | None) -> bool | None:
    """'auto' / 'true' / 'false' (flags and query parameters) -> None / True / False."""
    if value is None or isinstance(value, bool):
        return value
    choices = {"auto": None, "true": True, "false": False}
    if value not in choices:
        raise UserError(_("invert must be auto, true or false, got {value!r}.").format(value=value))
    return choices[value]


def parse_framing(value: str | None) -> Framing | None:
    """'auto' / 'fill' / 'fit' / 'none' -> None (the learned framing) or the override."""
    if value is None or value == "auto":
        return None
    if value not in FRAMINGS:
        raise UserError(
            _("framing must be auto, {choices}, got {value!r}.").format(choices=", ".join(FRAMINGS), value=value)
        )
    return value  # type: ignore[return-value]


def model_input(
    source: str | os.PathLike[str] | bytes,
    contract: InputContract,
    input_shape: tuple[int, int, int],
    invert: bool | None = None,
    framing: Framing | None = None,
    max_pixels: int | None = None,
) -> Framed:
    """Decode an image file or upload at its own size and frame it like the training images (uint8)."""
    h, w, c = input_shape
    image = read_image(source, None, c, max_pixels=max_pixels)
    return frame(image, contract, (h, w), invert, framing, value_range=(0.0, 255.0))


def frame(
    image: np.ndarray,
    contract: InputContract,
    size: tuple[int, int],
    invert: bool | None = None,
    framing: Framing | None = None,
    value_range: tuple[float, float] | None = None,
) -> Framed:
    """One (h, w, C) image of any size in `value_range` (default: the training units) -> the model's (H, W, C) input.

    `invert` None inverts when the image's dominant level is on the other side from the training images'
    background; `framing` None applies the learned framing. A frame-sized image already framed within the
    training images' own spread is passed through unchanged, so a dataset image predicts exactly as in training.
    """
    lo, hi = value_range or contract.pixel_range
    framing = framing or contract.framing
    gray = _gray(image, lo, hi)
    flip = (
        invert
        if invert is not None
        else (
            contract.background is not None and (_mode_levels(gray[None])[0] > 0.5) != (contract.background == "light")
        )
    )
    if flip:
        image = _inverted(image, lo, hi)
        gray = 1.0 - gray
    ink = gray if contract.background != "light" else 1.0 - gray
    found = ink_box(ink, contract.threshold) if framing != "none" else None
    if found is None:
        return Framed(resize(image, size), bool(flip), "none")
    if image.shape[:2] == tuple(size) and _framed_like_training(ink, contract, framing, found):
        return Framed(image, bool(flip), framing, kept=True)
    (top, left, bottom, right), weights = found.box, found.weights
    glyph = image[top:bottom, left:right]
    fill = _background_fill(image, ink, found)
    if framing == "fill":
        return Framed(resize(glyph, size), bool(flip), "fill")
    h, w = size
    scale = contract.fraction / max((bottom - top) / h, (right - left) / w)
    glyph = resize(glyph, (max(1, round((bottom - top) * scale)), max(1, round((right - left) * scale))))
    gh, gw = glyph.shape[:2]
    if contract.centre == "mass":
        cy, cx = _centre_of_mass(resize(weights[top:bottom, left:right, None].astype(np.float32), (gh, gw))[..., 0])
    else:
        cy, cx = (gh - 1) / 2, (gw - 1) / 2
    y, x = round((h - 1) / 2 - cy), round((w - 1) / 2 - cx)
    y, x = min(max(y, min(0, h - gh)), max(0, h - gh)), min(max(x, min(0, w - gw)), max(0, w - gw))  # stay in frame
    return Framed(_paste(glyph, fill, (h, w), y, x), bool(flip), "fit")


def _framed_like_training(ink: np.ndarray, contract: InputContract, framing: Framing, found: InkBox) -> bool:
    if framing != contract.framing:
        return False
    measured = measure(ink, contract.threshold, found)
    if measured is None:
        return False
    height, width, longest, mass, box = measured
    if framing == "fill":
        return min(height, width) >= contract.fraction_range[0]
    low, high = contract.fraction_range
    return low <= longest <= high and (mass if contract.centre == "mass" else box) <= contract.offset_limit


def _inverted(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if image.dtype == np.uint8:
        return (255 - image).astype(np.uint8)
    return (lo + hi - image).astype(image.dtype)


def _background_fill(image: np.ndarray, ink: np.ndarray, found: InkBox) -> np.ndarray:
    """The image's own background (per channel, the median of the non-ink pixels), to pad the frame with."""
    paper = ink <= found.cut
    pixels = image[paper] if paper.any() else image.reshape(-1, image.shape[-1])
    return np.median(pixels, axis=0).astype(image.dtype)


def _paste(glyph: np.ndarray, fill: np.ndarray, size: tuple[int, int], y: int, x: int) -> np.ndarray:
    """The glyph on a background-filled (H, W, C) canvas with its top-left at (y, x), clipped at the edges."""
    h, w = size
    canvas = np.empty((h, w, glyph.shape[2]), dtype=glyph.dtype)
    canvas[...] = fill
    gy, gx = max(0, -y), max(0, -x)
    cy, cx = max(0, y), max(0, x)
    rows, cols = min(h - cy, glyph.shape[0] - gy), min(w - cx, glyph.shape[1] - gx)
    canvas[cy : cy + rows, cx : cx + cols] = glyph[gy : gy + rows, gx : gx + cols]
    return canvas


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, C) -> (H, W, C) with Pillow's Lanczos: 8-bit L/RGB images as PIL does them, anything else per channel in float."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    if image.dtype == np.uint8 and image.shape[2] in (1, 3):
        mode = "L" if image.shape[2] == 1 else "RGB"
        out = np.asarray(
            Image.fromarray(image[..., 0] if mode == "L" else image, mode).resize((w, h), Image.Resampling.LANCZOS)
        )
        return out.reshape(h, w, image.shape[2])
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., k], dtype=np.float32), "F").resize(
                (w, h), Image.Resampling.LANCZOS
            )
        )
        for k in range(image.shape[2])
    ]
    out = np.stack(channels, axis=-1)
    return out.astype(image.dtype) if image.dtype.kind == "f" else np.clip(np.rint(out), 0, 255).astype(image.dtype)


def with_source(contract: InputContract, source: str) -> InputContract:
    return replace(contract, source=source)
