"""Images and probability bars as terminal text, so inspection works over SSH with no display.

Each character cell shows two pixels stacked: the upper half block '▀' drawn in the top
pixel's colour on the bottom pixel's background (24-bit ANSI colour). Without colour (a pipe,
a file, NO_COLOR) the same cell falls back to ' ', '▀', '▄' or '█' by thresholding, which
still shows a digit or a letter clearly.
"""

from __future__ import annotations

import os
import re

import numpy as np
import wcwidth
from PIL import Image

from ..checks import pad, printable, text_width
from ..i18n import _
from .inspection import Sample

UPPER, LOWER, FULL = "▀", "▄", "█"
_RESET = "\x1b[0m"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def wants_color(stream) -> bool:
    """Colour only on a real terminal, and never when the user set NO_COLOR (https://no-color.org)."""
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


def visible_width(text: str) -> int:
    """Terminal columns: East Asian wide characters (Hangul, CJK) take two, ANSI colour codes none."""
    return wcwidth.width(_ANSI.sub("", text))


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Any (H, W, C) or (H, W) image -> uint8 (H, W, 3), stretched to 0..255 when it is not uint8."""
    pixels = np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.dtype != np.uint8:
        lo, hi = float(np.nanmin(pixels)), float(np.nanmax(pixels))
        pixels = np.nan_to_num((pixels - lo) / (hi - lo if hi > lo else 1.0) * 255).round().astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return pixels


def fit_width(pixels: np.ndarray, max_width: int | None) -> np.ndarray:
    """Shrink (never enlarge) an RGB image so it is at most `max_width` columns wide."""
    h, w = pixels.shape[:2]
    if max_width is None or w <= max_width:
        return pixels
    new_h = max(1, round(h * max_width / w))
    return np.asarray(Image.fromarray(pixels).resize((max_width, new_h), Image.Resampling.BOX))


def halfblocks(image: np.ndarray, color: bool = True, max_width: int | None = None) -> list[str]:
    """Lines of text that draw `image`: one column per pixel, one line per two pixel rows."""
    pixels = fit_width(to_rgb8(image), max_width)
    if len(pixels) % 2:  # an odd last row is drawn on black
        pixels = np.concatenate([pixels, np.zeros_like(pixels[:1])])
    lines = []
    for top, bottom in zip(pixels[0::2], pixels[1::2]):
        if color:
            cells = [
                f"\x1b[38;2;{t[0]};{t[1]};{t[2]}m\x1b[48;2;{b[0]};{b[1]};{b[2]}m{UPPER}"
                for t, b in zip(top.tolist(), bottom.tolist())
            ]
            lines.append("".join(cells) + _RESET)
        else:
            bright_top = top.mean(axis=1) >= 128
            bright_bottom = bottom.mean(axis=1) >= 128
            lines.append(
                "".join(
                    FULL if t and b else UPPER if t else LOWER if b else " " for t, b in zip(bright_top, bright_bottom)
                )
            )
    return lines


def bar(value: float, width: int = 20) -> str:
    """A horizontal bar with eighth-block resolution, `width` cells for 1.0."""
    eighths = int(round(max(0.0, min(1.0, value)) * width * 8))
    full, part = divmod(eighths, 8)
    return FULL * full + ("▏▎▍▌▋▊▉"[part - 1] if part else "")


def sample_text(sample: Sample, width: int = 20) -> list[str]:
    """The header line (index, the figures' caption `true → predicted (p%)`, verdict) and one probability bar
    per class, with its percentage."""
    where = f"#{sample.index}" if sample.index is not None else _("image")
    lines = [f"{where}  {printable(sample.caption)}  {sample.verdict}"]
    names = [printable(n) for n in sample.class_names]
    name_width = max(text_width(n) for n in names)
    for k, (name, p) in enumerate(zip(names, sample.probabilities)):
        marks = (_("<- predicted") if k == sample.predicted else "") + (
            "  " + _("<- true") if sample.label is not None and k == sample.label and k != sample.predicted else ""
        )
        lines.append(f"  {pad(name, name_width, '>')} {float(p):6.1%} {bar(float(p), width):<{width}} {marks}".rstrip())
    return lines


def side_by_side(left: list[str], right: list[str], gap: int = 3) -> list[str]:
    """Two blocks of lines next to each other; ANSI colour codes do not count towards the width."""
    width = max((visible_width(line) for line in left), default=0)
    rows = max(len(left), len(right))
    out = []
    for i in range(rows):
        l = left[i] if i < len(left) else ""
        r = right[i] if i < len(right) else ""
        out.append((l + " " * (width - visible_width(l) + gap) + r).rstrip())
    return out


def render_sample(sample: Sample, color: bool = True, draw: bool = True, max_width: int = 40) -> str:
    """The image drawn in half blocks, with its caption and class probabilities beside it."""
    text = sample_text(sample)
    if not draw:
        return "\n".join(text)
    return "\n".join(side_by_side(halfblocks(sample.image, color, max_width), text))


def heat_overlay(image: np.ndarray, heatmap: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """The image in gray with the heat map laid over it in red-yellow: where Grad-CAM looked."""
    gray = to_rgb8(image).astype(np.float32).mean(axis=2, keepdims=True) / 255.0
    h = np.clip(heatmap, 0, 1)[..., None]
    heat = np.concatenate([np.ones_like(h), h, np.zeros_like(h)], axis=2)  # red -> yellow as heat grows
    mixed = gray * (1 - strength * h) + heat * strength * h
    return (np.clip(mixed, 0, 1) * 255).round().astype(np.uint8)
