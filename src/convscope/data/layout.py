"""Turn an image array of any common axis order into channels-last (N, H, W, C).

Array files do not say which axis is which, so convscope applies one fixed rule:

1. ``layout=`` given (``NHWC``, ``NCHW``, ``NHW``, ``HWN`` or ``HWCN``): it is obeyed; the
   array must have that many axes.
2. Otherwise the number of labels decides which axis is N (images): the axis whose size equals
   it.  If several axes match, the first axis wins, then the last.  Only the first or the last
   axis can be N; with no label count, N is the first axis.
3. The rest is read by the number of axes:

   * 2-D ``(N, P)``: flat rows, ``P = S*S`` gives S x S grayscale, ``P = 3*S*S`` gives S x S RGB
     stored pixel by pixel (R, G, B, R, G, B, ...).  ``(P, N)`` when the labels say so.
   * 3-D: ``(N, H, W)`` or ``(H, W, N)`` (notMNIST's ``.mat`` ships (28, 28, 18724)); one channel.
   * 4-D with N first: ``(N, H, W, C)`` when the last axis is 1, 3 or 4 (Keras' default, so it
     wins a tie), else ``(N, C, H, W)`` when the second axis is 1, 3 or 4 (PyTorch's order).
   * 4-D with N last: ``(H, W, C, N)`` (MATLAB's order), C being 1, 3 or 4.

Any other shape, or one with no axis matching the label count, is a `UserError` naming the
shape and the count; pass ``layout=`` when the rule guesses wrong.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UserError
from ..i18n import _

LAYOUTS: tuple[str, ...] = ("NHWC", "NCHW", "NHW", "HWN", "HWCN")
CHANNEL_SIZES = (1, 3, 4)

# Axis permutation taking each named layout to N, H, W[, C].
_TO_NHWC: dict[str, tuple[int, ...]] = {
    "NHWC": (0, 1, 2, 3),
    "NCHW": (0, 2, 3, 1),
    "NHW": (0, 1, 2),
    "HWN": (2, 0, 1),
    "HWCN": (3, 0, 1, 2),
}


def check_layout(layout: str | None) -> str | None:
    """Upper-case a user's `layout` and reject unknown names early, before any file is read."""
    if layout is None:
        return None
    name = str(layout).strip().upper()
    if name not in _TO_NHWC:
        raise UserError(
            _("layout '{layout}' is not one of {layouts}.").format(layout=layout, layouts=", ".join(LAYOUTS))
        )
    return name


def to_nhwc(array: np.ndarray, n_labels: int | None = None, layout: str | None = None, source: str = "") -> np.ndarray:
    """Return `array` as a C-contiguous (N, H, W, C) array, following the module's rule."""
    where = f"{source}: " if source else ""
    shape = tuple(int(s) for s in array.shape)
    name = check_layout(layout) or _guess_layout(shape, n_labels, where)
    if name == "flat":
        return _unflatten(array, n_labels, where)
    if array.ndim != len(name):
        raise UserError(
            _("{where}layout {name} needs a {ndim}-D array, but the images have shape {shape}.").format(
                where=where, name=name, ndim=len(name), shape=shape
            )
        )
    out = np.transpose(array, _TO_NHWC[name])
    if out.ndim == 3:
        out = out[..., np.newaxis]
    if n_labels is not None and out.shape[0] != n_labels:
        raise UserError(
            _("{where}layout {name} reads shape {shape} as {count} images, but there are {n_labels} labels.").format(
                where=where, name=name, shape=shape, count=out.shape[0], n_labels=n_labels
            )
        )
    return np.ascontiguousarray(out)


def _guess_layout(shape: tuple[int, ...], n_labels: int | None, where: str) -> str:
    """Apply rules 2 and 3 to a shape; 'flat' stands for the 2-D cases."""
    ndim = len(shape)
    if ndim not in (2, 3, 4):
        raise UserError(
            _("{where}images of shape {shape} have {ndim} axes; expected 2 (flat), 3 (N,H,W) or 4 (N,H,W,C).").format(
                where=where, shape=shape, ndim=ndim
            )
        )
    if ndim == 2:
        return "flat"
    if n_labels is None or shape[0] == n_labels:
        n_first = True
    elif shape[-1] == n_labels:
        n_first = False
    else:
        raise UserError(
            _(
                "{where}images of shape {shape} have no first or last axis of size {n_labels} to match the {n_labels} labels."
            ).format(where=where, shape=shape, n_labels=n_labels)
        )
    if ndim == 3:
        return "NHW" if n_first else "HWN"
    if n_first:
        if shape[3] in CHANNEL_SIZES:
            return "NHWC"
        if shape[1] in CHANNEL_SIZES:
            return "NCHW"
        raise UserError(
            _(
                "{where}images of shape {shape} have no channel axis of size 1, 3 or 4 after N={count}; expected (N,H,W,C) or (N,C,H,W)."
            ).format(where=where, shape=shape, count=shape[0])
        )
    if shape[2] in CHANNEL_SIZES:
        return "HWCN"
    raise UserError(
        _(
            "{where}images of shape {shape} with N={count} last need a channel axis of size 1, 3 or 4 third, as in (H,W,C,N)."
        ).format(where=where, shape=shape, count=shape[3])
    )


def _unflatten(array: np.ndarray, n_labels: int | None, where: str) -> np.ndarray:
    """(N, S*S) or (N, 3*S*S) rows -> (N, S, S, C); a transposed (P, N) table is turned first."""
    shape = tuple(int(s) for s in array.shape)
    if array.ndim != 2:
        raise UserError(
            _("{where}flat images need a 2-D array, but the images have shape {shape}.").format(
                where=where, shape=shape
            )
        )
    if n_labels is not None and shape[0] != n_labels:
        if shape[1] != n_labels:
            raise UserError(
                _(
                    "{where}flat images of shape {shape} have no axis of size {n_labels} to match the {n_labels} labels."
                ).format(where=where, shape=shape, n_labels=n_labels)
            )
        array = array.T
    n, pixels = array.shape
    for channels in (1, 3):
        side = math.isqrt(pixels // channels)
        if side > 0 and side * side * channels == pixels:
            return np.ascontiguousarray(array.reshape(n, side, side, channels))
    raise UserError(
        _(
            "{where}{pixels} values per image is neither a square (like 784 = 28 x 28) nor 3 x a square (RGB); save the images as (N, H, W) or (N, H, W, C) instead."
        ).format(where=where, pixels=pixels)
    )
