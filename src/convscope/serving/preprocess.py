"""From what a client sends to the (H, W, C) image the model was trained on: pure functions.

An upload is decoded at its own size and framed by `convscope.data.framing.model_input`, the one
function `convscope predict` and `inspect --image` use too: inverted when its background is on the
other side from the training images', its ink cropped and scaled the way the training images are
framed (the run's learned `InputContract`), then resized to the model's input. JSON pixels are in
the training data's own units and must already have the model's input shape; they are framed by
the same rules (`framing.frame`). Neither is scaled here: `predict_proba` applies the run's stored
min-max scaling, the one prediction path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checks import TooManyPixels
from ..data.framing import Framed, Framing, InputContract, frame, model_input
from ..i18n import _
from .errors import InvalidPixels, PayloadTooLarge


@dataclass(frozen=True)
class Preprocessing:
    """What the server needs to know to turn a request into a model input."""

    input_shape: tuple[int, int, int]  # (H, W, C)
    pixel_range: tuple[float, float]  # the stored min-max scaling's (min, max), the training data's units
    contract: InputContract  # polarity and framing of the training images
    max_image_pixels: int = 4096 * 4096  # decoded width x height; larger uploads are refused with 413


PreparedImage = Framed  # image (H, W, C): uint8 for uploads, float32 for JSON pixels; inverted; framing


def from_upload(data: bytes, prep: Preprocessing, invert: bool | None, framing: Framing | None = None) -> PreparedImage:
    """An uploaded PNG/JPEG/BMP/GIF of any size and mode -> the model's input image."""
    try:
        # read_image checks the size from the header before decoding, with the server's own limit
        return model_input(bytes(data), prep.contract, prep.input_shape, invert, framing, prep.max_image_pixels)
    except TooManyPixels as error:
        pixels = error.width * error.height
        raise PayloadTooLarge(
            _(
                "the image is {width} x {height} pixels ({pixels:,}); this server accepts at most {max_image_pixels:,} pixels per image."
            ).format(width=error.width, height=error.height, pixels=pixels, max_image_pixels=prep.max_image_pixels)
        ) from None


def from_pixels(value: Any, prep: Preprocessing, invert: bool | None, framing: Framing | None = None) -> PreparedImage:
    """JSON pixels ((H, W) for a grayscale model, or (H, W, C)) in the training data's units."""
    h, w, c = prep.input_shape
    lo, hi = prep.pixel_range
    try:
        array = np.array(value)
    except (ValueError, TypeError):
        raise InvalidPixels(
            _("pixels must be a rectangular nested list of numbers of shape ({h}, {w}, {c}).").format(h=h, w=w, c=c)
        ) from None
    if array.dtype.kind == "O" and all(type(v) in (int, float) for v in array.flat):
        array = _big_integers(array)  # integers past int64: numpy keeps them as Python objects
    if array.dtype.kind not in "iuf" or array.size == 0:
        message = (
            _("pixels must be numbers, got values empty.")
            if array.size == 0
            else _("pixels must be numbers, got values of type {kind}.")
        )
        raise InvalidPixels(message.format(kind=_json_kind(array)))
    if array.ndim == 2 and c == 1:
        array = array[..., np.newaxis]
    if array.shape != (h, w, c):
        expected = (
            _("({h}, {w}) or ({h}, {w}, 1)") if c == 1 else _("({h}, {w}) with {c} channels, ({h}, {w}, {c})")
        ).format(h=h, w=w, c=c)
        raise InvalidPixels(
            _("pixels have shape {shape}, but this model takes {expected}.").format(
                shape=array.shape, expected=expected
            )
        )
    with np.errstate(over="ignore", invalid="ignore"):  # past float32's range is inf, refused just below
        array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise InvalidPixels(
            _("pixels contain {count} values that are NaN, infinite or beyond float32's range (±3.4e38).").format(
                count=int((~np.isfinite(array)).sum())
            )
        )
    if array.min() < lo or array.max() > hi:
        raise InvalidPixels(
            _("pixel values span {minimum:g}..{maximum:g}, outside the training data's range {lo:g}..{hi:g}.").format(
                minimum=float(array.min()), maximum=float(array.max()), lo=lo, hi=hi
            )
        )
    return frame(array, prep.contract, (h, w), invert, framing)


def _big_integers(array: np.ndarray) -> np.ndarray:
    """Python integers too large for int64 as float64; one too large even for that is refused by name."""
    try:
        return array.astype(np.float64)
    except OverflowError:
        bits = max(abs(v).bit_length() for v in array.flat if isinstance(v, int))
        digits = int(bits * 0.30103) + 1  # from the bit length: str() of a huge int is itself refused
        raise InvalidPixels(
            _("pixels hold an integer of about {digits} digits, beyond float32's range (±3.4e38).").format(
                digits=digits
            )
        ) from None


def _json_kind(array: np.ndarray) -> str:
    return {"b": "true/false", "U": "string", "O": "null or mixed"}.get(array.dtype.kind, str(array.dtype))


# JSON pixels whose own spread is under this share of the training range look like they were sent in other
# units (0..1 to a model trained on 0..255 covers 0.4% of it; 0..1 to scikit-learn's 0..16 digits, 6%).
IMPLAUSIBLE_SPREAD = 0.1


def range_warnings(pixels: Any, pixel_range: tuple[float, float]) -> tuple[str, ...]:
    """Why accepted JSON pixels may still be in the wrong units; () when they look right, and for uploads.

    A blank image (one value) is plausible in any units; an image with detail in a sliver of the range is not."""
    if isinstance(pixels, (bytes, bytearray)):
        return ()  # an uploaded file: decoded into 0..255 by the server itself
    image = np.asarray(pixels, dtype=np.float64)
    lo, hi = pixel_range
    low, high = float(image.min()), float(image.max())
    if high == low or hi <= lo or (high - low) >= IMPLAUSIBLE_SPREAD * (hi - lo):
        return ()
    hint = (
        _("; if they were scaled to 0..1, multiply them by {factor:g}").format(factor=hi)
        if lo == 0 and high <= 1 < hi
        else ""
    )
    return (
        _(
            "pixel values span only {low:g}..{high:g}, {share} of the training data's range {lo:g}..{hi:g}: "
            "send pixels in the training data's units{hint}."
        ).format(low=low, high=high, share=f"{100 * (high - low) / (hi - lo):.1g}%", lo=lo, hi=hi, hint=hint),
    )
