"""A notMNIST-like letters set, held back from the repository: A-J once in each of many fonts, 28 x 28.

    python -m benchmarks.letters --out runs/bench/letters.npz [--images 10000] [--seed 0] [--fonts DIR ...]
    make letters            # the same, with the Debian font packages below unpacked into runs/bench/fonts

notMNIST rendered the letters A-J in each of many publicly available fonts, one image per font and letter,
the glyph stretched to fill a 28 x 28 frame, white on black. This does the same with the font files under the
given folders (TrueType, OpenType, collections: their first face), or without `--fonts`, every font fontconfig
knows (`fc-list`). The rendering is the tests' (tests/glyphs.py: `notmnist_like`), so the letters the tests
train on and this set look alike.

A font is kept only if it really has the ten letters:
- its Unicode character map (fontTools' best cmap) maps all of A-J, none of them to `.notdef`;
- it is no symbol font: PANOSE family kind 5 (pictorial) or a name with symbol, dingbat, ornament, icon, emoji,
  awesome or math in it is refused (such fonts often map A to a picture);
- every letter leaves ink at least 3 pixels high or wide at 96 px, and none looks like the font's drawing of an
  unassigned code point (U+0378, its missing-glyph box);
- the ten letters are ten different images (a font that draws one placeholder for all of them is refused).
Identical images (the same design in two files: hinted and unhinted, TrueType and OpenType) are kept once.
With more than `--images` images a seeded random subset is written; with fewer than 5,000 the set is filled
up to that many (or to `--images` if smaller) with seeded mild variations of the rendered letters (rotated by
up to 8 degrees, filling 85-100% of the frame), which the summary line reports.

The npz holds `images` (N, 28, 28) uint8, `labels` (N,) the letters 'A'..'J' as text (so `cs.load` names the
classes A..J) and `fonts` (N,) each image's font file name. It stays outside the repository.

The Debian packages `make letters` unpacks (`apt-get download` and `dpkg-deb -x`, into the output folder: nothing
is installed, so the tests' installed fonts stay the same) are LETTER_FONTS in the Makefile: 183 Debian 12
packages, symbol fonts among them for the filter to refuse.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import glyphs  # (the tests' font renderer: one definition of what notMNIST-like letters look like)

LETTERS = glyphs.LETTERS
SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
UNASSIGNED = "\u0378"  # no character has this code point: a font draws its missing-glyph box for it
SYMBOL_NAME = re.compile(r"\b(symbols?|dingbats?|ornaments?|icons?|emoji|awesome|math)\b", re.IGNORECASE)
MIN_INK = 3  # pixels at 96 px: less is a dot or a hairline, not a letter
MIN_IMAGES = 5000  # below this, seeded variations fill the set up


@dataclass(frozen=True)
class Letters:
    """A font's ten letters (10, 28, 28) uint8, or why the font was refused."""

    font: Path
    images: np.ndarray | None
    refused: str = ""


def font_files(folders: Iterable[Path] = ()) -> list[Path]:
    """Font files under the folders (recursively), or every font fontconfig lists; sorted, unique."""
    folders = list(folders)
    if folders:
        paths = [p for folder in folders for p in Path(folder).rglob("*") if p.is_file()]
    elif shutil.which("fc-list"):
        listing = subprocess.run(["fc-list", "--format", "%{file}\n"], capture_output=True, text=True, check=False)
        paths = [Path(line) for line in listing.stdout.splitlines() if line]
    else:
        paths = []
    return sorted({p for p in paths if p.suffix.lower() in SUFFIXES})


def font_letters(font: Path) -> Letters:
    """Render A-J notMNIST-style, if the font passes every check of the module's docstring."""
    refused = _cmap_refusal(font)
    if refused:
        return Letters(font, None, refused)
    try:
        inks = [glyphs.glyph(font, c) for c in LETTERS]
        missing = glyphs.glyph(font, UNASSIGNED)
    except OSError as exc:  # FreeType cannot open or render it
        return Letters(font, None, f"unreadable ({exc})")
    if any(min(ink.shape) < MIN_INK for ink in inks):
        return Letters(font, None, "blank letter")
    if any(ink.shape == missing.shape and np.array_equal(ink, missing) for ink in inks):
        return Letters(font, None, "letter drawn as the missing-glyph box")
    images = np.stack([glyphs.notmnist_like(font, c) for c in LETTERS])
    if len({im.tobytes() for im in images}) < len(LETTERS):
        return Letters(font, None, "letters share a drawing")
    return Letters(font, images)


def _cmap_refusal(font: Path) -> str:
    from fontTools.ttLib import TTFont

    try:
        with TTFont(str(font), fontNumber=0, lazy=True) as tt:
            cmap = tt.getBestCmap()
            panose = tt["OS/2"].panose.bFamilyType if "OS/2" in tt else 0
            names = (
                " ".join(str(record) for record in tt["name"].names if record.nameID in (1, 4)) if "name" in tt else ""
            )
    except Exception as exc:  # noqa: BLE001 - fontTools raises many kinds on damaged or unusual files
        return f"unreadable ({type(exc).__name__})"
    if not cmap or any(cmap.get(ord(c)) in (None, ".notdef") for c in LETTERS):
        return "no Unicode A-J"
    if panose == 5 or SYMBOL_NAME.search(names or font.stem):
        return "symbol font"
    return ""


def build(fonts: list[Path], images: int, seed: int, progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(images (N, 28, 28) uint8, labels (N,) 'A'..'J', fonts (N,) file names, summary)."""
    kept, refused = [], Counter()
    for i, font in enumerate(fonts):
        letters = font_letters(font)
        if letters.images is None:
            refused[letters.refused.split(" (")[0]] += 1
        else:
            kept.append(letters)
        if progress and (i + 1) % 200 == 0:
            progress(f"{i + 1} of {len(fonts)} fonts read, {len(kept)} kept")
    x, y, names = _unique([(im, c, k.font.name) for k in kept for im, c in zip(k.images, LETTERS)])
    rng = np.random.default_rng(seed)
    rendered, varied = len(x), 0
    if len(x) > images:
        pick = np.sort(rng.choice(len(x), images, replace=False))
        x, y, names = x[pick], y[pick], names[pick]
    elif len(x) < min(MIN_IMAGES, images) and len(x):
        extra, sources = _variations(x, min(MIN_IMAGES, images) - len(x), rng)
        varied = len(extra)
        x, y, names = (
            np.concatenate([x, extra]),
            np.concatenate([y, y[sources]]),
            np.concatenate([names, names[sources]]),
        )
    summary = {
        "fonts_found": len(fonts),
        "fonts_kept": len(kept),
        "refused": dict(refused),
        "unique_images": rendered,
        "duplicates_dropped": 10 * len(kept) - rendered,
        "variations_added": varied,
        "images": len(x),
    }
    return x, y, names, summary


def _unique(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seen, out = set(), []
    for image, label, name in rows:
        key = image.tobytes() + label.encode()
        if key not in seen:
            seen.add(key)
            out.append((image, label, name))
    if not out:
        return np.zeros((0, 28, 28), np.uint8), np.array([], "<U1"), np.array([], "<U1")
    images, labels, names = zip(*out)
    return np.stack(images), np.array(labels), np.array(names)


def _variations(x: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`count` mild variations of random images of x: rotated by up to 8 degrees, shrunk to 85-100% of the frame,
    centred; with the index of each one's source."""
    size = x.shape[1]
    sources = rng.integers(0, len(x), count)
    out = np.empty((count, size, size), np.uint8)
    for i, s in enumerate(sources):
        turned = Image.fromarray(x[s]).rotate(rng.uniform(-8, 8), Image.Resampling.BILINEAR, expand=True)
        box = turned.getbbox() or (0, 0, size, size)
        side = int(round(rng.uniform(0.85, 1.0) * size))
        small = turned.crop(box).resize((side, side), Image.Resampling.LANCZOS)
        frame = Image.new("L", (size, size), 0)
        frame.paste(small, ((size - side) // 2, (size - side) // 2))
        out[i] = np.asarray(frame)
    return out, sources


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="the .npz to write (outside the repository)")
    p.add_argument("--images", type=int, default=10000, help="at most this many images (a seeded random subset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--fonts", type=Path, action="append", default=[], help="a folder of font files (repeatable); default: fc-list"
    )
    args = p.parse_args(argv)
    logging.getLogger("fontTools").setLevel(logging.ERROR)  # its warnings about harmless table quirks, by the hundred
    started = time.perf_counter()
    fonts = font_files(args.fonts)
    if not fonts:
        print(f"No font files found ({', '.join(map(str, args.fonts)) or 'fc-list'}).", file=sys.stderr)
        return 2
    x, y, names, summary = build(fonts, args.images, args.seed, lambda line: print(line, file=sys.stderr))
    if not len(x):
        print(f"None of the {len(fonts)} fonts has usable letters A-J: {summary['refused']}.", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial.npz")
    np.savez_compressed(partial, images=x, labels=y, fonts=names)
    partial.replace(args.out)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(
        f"{args.out}: {summary['images']:,} images of {summary['fonts_kept']:,} fonts "
        f"({summary['fonts_found']:,} files read; refused: {summary['refused']}; {summary['unique_images']:,} "
        f"different images, {summary['duplicates_dropped']:,} duplicates dropped"
        f"{', ' + format(summary['variations_added'], ',') + ' variations added' if summary['variations_added'] else ''}"
        f"), {summary['seconds']} s. Per letter: {dict(sorted(Counter(y.tolist()).items()))}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
