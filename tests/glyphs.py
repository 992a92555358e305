"""Letters and digits rendered from the installed TrueType fonts (Debian's fonts-dejavu and fonts-liberation).

Two looks: the training look of notMNIST (a white glyph stretched to fill a black 28 x 28 frame), and the look
of a user's own picture (black ink on white paper, larger, at a random size and place). Used by the framing
tests and by `benchmarks/own_pictures.py`.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LETTERS = "ABCDEFGHIJ"
DIGITS = "0123456789"


def truetype_fonts() -> list[Path]:
    """Every TrueType font fontconfig knows, sorted by file name (a stable order for splitting)."""
    paths: list[str] = []
    if shutil.which("fc-list"):
        listing = subprocess.run(
            ["fc-list", ":fontformat=TrueType", "file"], capture_output=True, text=True, check=False
        )
        paths = [line.strip().rstrip(":") for line in listing.stdout.splitlines() if line.strip()]
    if not paths:
        paths = glob.glob("/usr/share/fonts/truetype/**/*.ttf", recursive=True)
    usable = [Path(p) for p in paths if Path(p).suffix.lower() == ".ttf"]
    return sorted(set(usable), key=lambda p: p.name)


@lru_cache(maxsize=4096)
def glyph(font: Path, char: str, px: int = 96) -> np.ndarray:
    """The character's ink, white on black, cropped to its bounding box (uint8 (h, w); (0, 0) for a blank glyph).

    The canvas is placed around the glyph's own box with a margin of `px`, so no font's metrics (a tall ascender,
    a swash far left) push the ink off it; the crop makes the result independent of where it was drawn.
    """
    face = ImageFont.truetype(str(font), px)
    left, top, right, bottom = face.getbbox(char)
    canvas = Image.new("L", (right - left + 2 * px, bottom - top + 2 * px), 0)
    ImageDraw.Draw(canvas).text((px - left, px - top), char, fill=255, font=face)
    pixels = np.asarray(canvas)
    rows, cols = np.flatnonzero(pixels.max(axis=1) > 0), np.flatnonzero(pixels.max(axis=0) > 0)
    if not len(rows):
        return np.zeros((0, 0), np.uint8)
    return pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def notmnist_like(font: Path, char: str, size: int = 28) -> np.ndarray:
    """As notMNIST draws its letters: the white glyph stretched to fill a black size x size frame."""
    return np.asarray(Image.fromarray(glyph(font, char)).resize((size, size), Image.Resampling.LANCZOS))


def letters_dataset(fonts: list[Path], size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size, 1) uint8 images and labels 0..9 for A-J in every given font."""
    images = [notmnist_like(f, c, size) for f in fonts for c in LETTERS]
    labels = [i for _ in fonts for i in range(len(LETTERS))]
    return np.stack(images)[..., None], np.array(labels, dtype=np.int64)


def own_picture(font: Path, char: str, rng: np.random.Generator, side: int = 200) -> np.ndarray:
    """As a user would type or scan it: black on white, side x side, the glyph 25-75% of the height, anywhere."""
    ink = Image.fromarray(glyph(font, char))
    height = int(rng.uniform(0.25, 0.75) * side)
    width = max(1, min(side - 2, round(ink.width * height / ink.height)))
    ink = ink.resize((width, height), Image.Resampling.LANCZOS)
    paper = Image.new("L", (side, side), 0)
    paper.paste(ink, (int(rng.integers(0, side - width + 1)), int(rng.integers(0, side - height + 1))))
    return 255 - np.asarray(paper)


def write_pictures(
    folder: Path, fonts: list[Path], chars: str, seed: int = 0, side: int = 200
) -> list[tuple[Path, int]]:
    """PNG files of `own_picture` for every font and character, with each file's class index."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for font in fonts:
        for label, char in enumerate(chars):
            path = folder / f"{font.stem}-{char}.png"
            Image.fromarray(own_picture(font, char, rng, side)).save(path)
            written.append((path, label))
    return written


def held_out_fonts() -> list[Path]:
    """Every third installed font: never trained on by the tests' letters model."""
    return truetype_fonts()[1::3]


def training_fonts() -> list[Path]:
    held_out = set(held_out_fonts())
    return [f for f in truetype_fonts() if f not in held_out]


# A CNN small enough to train on a few hundred glyphs in seconds, without BatchNorm (whose Keras momentum
# needs more steps than a tiny set gives to settle).
SMALL_CNN = {
    "layers": [
        {"Conv2D": {"filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPool2D": {}},
        {"Conv2D": {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPool2D": {}},
        {"Flatten": {}},
        {"Dense": {"units": 64, "activation": "relu"}},
        {"Dense": {"units": "num_classes", "activation": "softmax"}},
    ]
}
