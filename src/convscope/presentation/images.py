"""PNG bytes and data URIs from numpy images (Pillow) or from a matplotlib Figure (its own canvas)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

DPI = 100


def png_data_uri(png: bytes) -> str:
    """A `data:` URI, so a page or a notebook cell holds the picture itself and fetches nothing."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(figure, dpi: int = DPI) -> bytes:
    """PNG bytes of a `matplotlib.figure.Figure` through its Agg canvas (no pyplot, no display)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _to_uint8(pixels: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Raw images as a dataset stores them -> uint8, `value_range` (default: their own) stretched to 0-255;
    uint8 images without a range are kept as they are."""
    pixels = np.asarray(pixels)
    if pixels.dtype == np.uint8 and value_range is None:
        return pixels
    pixels = pixels.astype(np.float32)
    if not pixels.size:
        return pixels.astype(np.uint8)
    lo, hi = value_range if value_range is not None else (float(np.nanmin(pixels)), float(np.nanmax(pixels)))
    scaled = (pixels - lo) / (hi - lo if hi > lo else 1.0)
    return np.clip(np.nan_to_num(scaled) * 255 + 0.5, 0, 255).astype(np.uint8)


def array_png(pixels: np.ndarray, optimize: bool = True) -> bytes:
    """PNG bytes of one (H, W), (H, W, 1) or (H, W, 3) image; other channel counts show their first channel.
    `optimize=False` skips Pillow's search for the smallest encoding (the server's per-request tiles)."""
    pixels = _to_uint8(pixels)
    if pixels.ndim == 3:
        pixels = pixels[..., :3] if pixels.shape[2] == 3 else pixels[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", optimize=optimize)
    return buffer.getvalue()


def unit_png_data_uri(values: np.ndarray) -> str:
    """A (H, W) or (H, W, C) array of values in [0, 1] (a feature map, the input a model saw) as the data URI
    of an 8-bit PNG, 0 black and 1 white."""
    pixels = np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
    return png_data_uri(array_png(pixels, optimize=False))


def strip(
    images: np.ndarray, height: int = 56, gap: int = 2, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """(N, H, W, C) images side by side as one uint8 image about `height` pixels tall: each enlarged a
    whole number of times (nearest neighbour, so pixels stay sharp), a white gap between them. All share
    one brightness scale, `value_range` (the dataset's, say; default: these images'), so a faint image
    looks faint and 0..16 digits are not drawn black."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    images = _to_uint8(images, value_range)
    n, h, w, c = images.shape
    scale = max(1, round(height / max(h, 1)))
    c = 3 if c == 3 else 1
    out = np.full((h * scale, max(n * (w * scale + gap) - gap, 1), c), 255, np.uint8)
    for i, image in enumerate(images):
        big = np.repeat(np.repeat(image[..., :c], scale, axis=0), scale, axis=1)
        x = i * (w * scale + gap)
        out[:, x : x + w * scale] = big
    return out
