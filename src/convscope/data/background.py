"""Which background a set of images has: light ink on dark (MNIST) or dark ink on light (paper), or neither.

Pure functions of the images; the server's auto-invert and the export contract both read it."""

from __future__ import annotations

from typing import Literal

import numpy as np

Background = Literal["dark", "light"]

# A training set "has a background" when this share of its images agree on the border's side.
_BACKGROUND_AGREEMENT = 0.9


def border_pixels(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) -> (N, P): the pixels on the outer frame of each image, every channel."""
    top, bottom = images[:, 0], images[:, -1]
    left, right = images[:, 1:-1, 0], images[:, 1:-1, -1]
    return np.concatenate([p.reshape(len(images), -1) for p in (top, bottom, left, right)], axis=1)


def side_of(level: np.ndarray | float, pixel_range: tuple[float, float]) -> np.ndarray:
    """True where a level is on the light side of the range's midpoint."""
    return np.asarray(level, dtype=np.float64) > (pixel_range[0] + pixel_range[1]) / 2


def training_background(images: np.ndarray, pixel_range: tuple[float, float]) -> Background | None:
    """'dark' or 'light' when nearly all training images share a background side, else None (photos)."""
    if len(images) == 0:
        return None
    light = side_of(np.median(border_pixels(images), axis=1), pixel_range)
    if light.mean() >= _BACKGROUND_AGREEMENT:
        return "light"
    if (~light).mean() >= _BACKGROUND_AGREEMENT:
        return "dark"
    return None
