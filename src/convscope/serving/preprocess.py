"""From what a client sends to the (H, W, C) image the model was trained on: pure functions.

An upload is decoded by `convscope.data.read_image` (the decoder training used for image
folders and `convscope predict` uses for files): grayscale or RGB as the model expects, resized
to the model's input size. JSON pixels are taken as they are, in the training data's own units,
and must already have the model's input shape. Neither is scaled here: `predict_proba` applies
the run's stored min-max scaling, the one prediction path.

Inversion: MNIST-like data is light ink on a dark background, while people draw and scan dark
ink on white paper. The training images' border tells which background the model knows; an
incoming image whose border is on the other side of mid-gray is inverted (`invert=None`), or
the client says so itself (`invert=True/False`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..data import read_image
from ..data.background import Background, border_pixels, side_of
from .errors import InvalidPixels, PayloadTooLarge


@dataclass(frozen=True)
class Preprocessing:
    """What the server needs to know to turn a request into a model input."""

    input_shape: tuple[int, int, int]  # (H, W, C)
    pixel_range: tuple[float, float]  # the stored min-max scaling's (min, max), the training data's units
    background: Background | None  # of the training images; None: no clear background, never auto-invert
    max_image_pixels: int = 4096 * 4096  # decoded width x height; larger uploads are refused with 413


@dataclass(frozen=True)
class PreparedImage:
    image: np.ndarray  # (H, W, C): uint8 for uploads, float32 for JSON pixels
    inverted: bool


def should_invert(image: np.ndarray, value_range: tuple[float, float], background: Background | None, invert: bool | None) -> bool:
    """The client's choice, or (None) whether the image's border sits on the other side from training."""
    if invert is not None:
        return invert
    if background is None:
        return False
    light = bool(side_of(np.median(border_pixels(image[None])), value_range))
    return light != (background == "light")


def invert_image(image: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """The photographic negative within a value range: lo <-> hi."""
    lo, hi = value_range
    if image.dtype == np.uint8:
        return (255 - image).astype(np.uint8) if (lo, hi) == (0, 255) else image
    return (lo + hi - image).astype(image.dtype)


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header without decoding the pixels; None when unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # noqa: BLE001 - read_image reports unreadable data with a proper message
        return None


def from_upload(data: bytes, prep: Preprocessing, invert: bool | None) -> PreparedImage:
    """An uploaded PNG/JPEG/BMP/GIF of any size and mode -> the model's input image."""
    size = image_dimensions(data)
    if size is not None and size[0] * size[1] > prep.max_image_pixels:
        raise PayloadTooLarge(
            f"the image is {size[0]} x {size[1]} pixels ({size[0] * size[1]:,}); "
            f"this server accepts at most {prep.max_image_pixels:,} pixels per image."
        )
    h, w, c = prep.input_shape
    image = read_image(bytes(data), (h, w), c, max_pixels=prep.max_image_pixels)
    flip = should_invert(image, (0, 255), prep.background, invert)
    return PreparedImage(invert_image(image, (0, 255)) if flip else image, flip)


def from_pixels(value: Any, prep: Preprocessing, invert: bool | None) -> PreparedImage:
    """JSON pixels ((H, W) for a grayscale model, or (H, W, C)) in the training data's units."""
    h, w, c = prep.input_shape
    lo, hi = prep.pixel_range
    try:
        array = np.array(value)
    except (ValueError, TypeError):
        raise InvalidPixels(f"pixels must be a rectangular nested list of numbers of shape ({h}, {w}, {c}).") from None
    if array.dtype.kind not in "iuf" or array.size == 0:
        kind = "empty" if array.size == 0 else f"of type {_json_kind(array)}"
        raise InvalidPixels(f"pixels must be numbers, got values {kind}.")
    if array.ndim == 2 and c == 1:
        array = array[..., np.newaxis]
    if array.shape != (h, w, c):
        expected = f"({h}, {w})" + (f" or ({h}, {w}, 1)" if c == 1 else f" with {c} channels, ({h}, {w}, {c})")
        raise InvalidPixels(f"pixels have shape {array.shape}, but this model takes {expected}.")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise InvalidPixels(f"pixels contain {int((~np.isfinite(array)).sum())} NaN or infinite values.")
    if array.min() < lo or array.max() > hi:
        raise InvalidPixels(
            f"pixel values span {float(array.min()):g}..{float(array.max()):g}, outside the training data's range {lo:g}..{hi:g}."
        )
    flip = should_invert(array, (lo, hi), prep.background, invert)
    return PreparedImage(invert_image(array, (lo, hi)) if flip else array, flip)


def _json_kind(array: np.ndarray) -> str:
    return {"b": "true/false", "U": "string", "O": "null or mixed"}.get(array.dtype.kind, str(array.dtype))
