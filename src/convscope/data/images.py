"""Decode one image file or upload into a uint8 (H, W, C) array.

One function serves the image-folder loader, CLI `predict` and the HTTP server, so a picture
is turned into numbers the same way at training and at prediction time.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..checks import cut
from ..errors import UserError
from ..i18n import _
from .raw import limits

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

# Modes PIL cannot map to 8-bit gray without clipping: 16/32-bit integer and float gray.
_WIDE_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def read_image(
    path_or_bytes: str | os.PathLike[str] | bytes,
    size: tuple[int, int] | None,
    channels: int,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Decode an image and return it as uint8 (H, W, C).

    `size` is (height, width), as in numpy shapes (PIL itself uses (width, height)); None keeps
    the image's own size.  `channels` is 1 (grayscale) or 3 (RGB).  Transparent pixels are laid
    over white, the way an image viewer shows them, so a drawing on a transparent canvas does not
    turn into black on black.  Phone photos are turned upright by their EXIF orientation.
    Resizing uses Lanczos, which keeps thin strokes (digits, letters) sharp without aliasing.
    `max_pixels` (default `Limits.max_image_pixels`) bounds width x height, checked from the header
    before decoding, so a small file that decodes to gigabytes (a decompression bomb) is refused.
    """
    if channels not in (1, 3):
        raise UserError(_("channels must be 1 (grayscale) or 3 (RGB), got {channels}.").format(channels=channels))
    name = _("uploaded image") if isinstance(path_or_bytes, (bytes, bytearray)) else str(path_or_bytes)
    allowed = limits() if max_pixels is None else replace(limits(), max_image_pixels=max_pixels)
    target = _check_size(size) if size is not None else None
    if target is not None:
        allowed.check_pixels(target[1], target[0], _("{name} resized").format(name=name))
    try:
        image = open_image(
            io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else Path(path_or_bytes)
        )
        with image:
            allowed.check_pixels(image.width, image.height, name)
            image.load()  # decode now, so a truncated file fails here and not later
            image = ImageOps.exif_transpose(image)
            image = _to_mode(image, "L" if channels == 1 else "RGB")
            if target is not None and image.size != (target[1], target[0]):
                image = image.resize((target[1], target[0]), Image.Resampling.LANCZOS)
            pixels = np.asarray(image, dtype=np.uint8)
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(_("{name}: no such image file.").format(name=name)) from None
    except Image.DecompressionBombError:
        raise UserError(
            _(
                "{name}: the image declares more pixels than Pillow decodes ({limit:,}); it is refused as a decompression bomb."
            ).format(name=name, limit=2 * (Image.MAX_IMAGE_PIXELS or 0))
        ) from None
    except UnidentifiedImageError:
        raise UserError(
            _("{name}: not a PNG/JPEG/BMP/GIF image (PIL cannot identify its format).").format(name=name)
        ) from None
    except Exception as exc:  # noqa: BLE001
        # PIL signals bad data with OSError (UnidentifiedImageError, truncation), and its plugins
        # with ValueError, SyntaxError, IndexError, struct.error...: all mean "not a usable picture".
        raise UserError(
            _("{name}: not a readable PNG/JPEG/BMP/GIF image ({exc}).").format(name=name, exc=cut(str(exc), 120))
        ) from None
    return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels


def open_image(source) -> Image.Image:
    """`Image.open` without Pillow's bomb warning: our own pixel limit is checked on every header."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(source)


def is_grayscale(image: Image.Image) -> bool:
    """True when an opened (not necessarily decoded) image holds no colour.

    Cheap: reads the mode, and for palette images the palette, never the pixels.
    """
    if image.mode in ("1", "L", "LA", "La", *_WIDE_GRAY_MODES):
        return True
    if image.mode == "P":
        palette = image.getpalette() or []
        return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))
    return False


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Convert to 'L' or 'RGB', flattening transparency onto white and scaling wide gray to 8 bits."""
    if image.mode in _WIDE_GRAY_MODES:
        values = np.asarray(image, dtype=np.float64)
        if values.max(initial=0.0) > 255:
            values = values / 257.0  # 16-bit 0..65535 -> 0..255
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image if image.mode == mode else image.convert(mode)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise UserError(_("image size must be (height, width), got {size!r}.").format(size=size)) from None
    if height < 1 or width < 1:
        raise UserError(_("image size must be positive, got {height} x {width}.").format(height=height, width=width))
    return height, width
