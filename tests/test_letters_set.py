"""The held-back letters set's font filter (benchmarks/letters.py): fonts without real letters A-J are refused.

The fonts are made here with fontTools (bars for glyphs, a box for `.notdef`), so each refusal is tested on a
font known to have exactly that flaw, whatever fonts the machine has installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

ROOT = Path(__file__).resolve().parents[1]
LETTERS = "ABCDEFGHIJ"


def _module():
    spec = importlib.util.spec_from_file_location("benchmarks_letters", ROOT / "benchmarks" / "letters.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


letters = _module()


def _bars(count: int):
    """`count` vertical bars (clockwise, as TrueType wants outer contours); none for an empty glyph."""
    pen = TTGlyphPen(None)
    for i in range(count):
        x = 50 + 80 * i
        pen.moveTo((x, 0))
        pen.lineTo((x, 700))
        pen.lineTo((x + 40, 700))
        pen.lineTo((x + 40, 0))
        pen.closePath()
    return pen.glyph()


def _box():
    """The usual `.notdef` drawing: a hollow rectangle."""
    pen = TTGlyphPen(None)
    for (x0, y0, x1, y1), clockwise in (((50, 0, 550, 700), True), ((100, 50, 500, 650), False)):
        corners = [(x0, y0), (x0, y1), (x1, y1), (x1, y0)]
        for i, point in enumerate(corners if clockwise else corners[::-1]):
            (pen.moveTo if i == 0 else pen.lineTo)(point)
        pen.closePath()
    return pen.glyph()


def make_font(path: Path, cmap: dict[str, str], family: str = "Test Bars") -> Path:
    """A TrueType font mapping each character of `cmap` to a glyph: "bars3" (3 bars), "bars0" (empty), "box"."""
    glyphs = {".notdef": _box()}
    for name in sorted(set(cmap.values()) - {".notdef"}):
        glyphs[name] = _box() if name == "box" else _bars(int(name.removeprefix("bars")))
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder(list(glyphs))
    fb.setupCharacterMap({ord(c): name for c, name in cmap.items()})
    fb.setupGlyf(glyphs)
    fb.setupHorizontalMetrics({name: (1000, 0) for name in glyphs})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": family, "styleName": "Regular"})
    fb.setupOS2()
    fb.setupPost()
    fb.save(str(path))
    return path


GOOD = {c: f"bars{i + 1}" for i, c in enumerate(LETTERS)}


def test_a_font_with_ten_different_letters_is_kept(tmp_path):
    result = letters.font_letters(make_font(tmp_path / "good.ttf", GOOD))
    assert result.refused == ""
    assert result.images.shape == (10, 28, 28) and result.images.dtype == np.uint8
    assert result.images[0].mean() > 240  # one bar, stretched to fill the frame (as notMNIST stretches): white
    assert len({im.tobytes() for im in result.images}) == 10


@pytest.mark.parametrize(
    ("cmap", "family", "reason"),
    [
        ({c: GOOD[c] for c in "ABCDE"}, "Test Bars", "no Unicode A-J"),
        ({c: ".notdef" for c in LETTERS}, "Test Bars", "no Unicode A-J"),
        ({**GOOD, "A": "box"}, "Test Bars", "letter drawn as the missing-glyph box"),
        ({**GOOD, "C": "bars0"}, "Test Bars", "blank letter"),
        (dict.fromkeys(LETTERS, "bars3"), "Test Bars", "letters share a drawing"),
        (GOOD, "Test Symbols", "symbol font"),
        (GOOD, "Test Dingbats", "symbol font"),
    ],
)
def test_a_font_without_real_letters_is_refused(tmp_path, cmap, family, reason):
    result = letters.font_letters(make_font(tmp_path / "font.ttf", cmap, family))
    assert result.images is None
    assert result.refused == reason


def test_a_word_inside_a_name_is_no_symbol(tmp_path):
    # "SemiCondensed" holds "icon", "Aftermath" holds "math": whole words only
    assert letters.font_letters(make_font(tmp_path / "a.ttf", GOOD, "Test SemiCondensed Aftermath")).refused == ""


def test_the_set_drops_duplicates_and_fills_up_with_seeded_variations(tmp_path):
    fonts = [make_font(tmp_path / f"copy{i}.ttf", GOOD) for i in range(2)]
    fonts.append(make_font(tmp_path / "symbols.ttf", GOOD, "Test Symbols"))
    x, y, names, summary = letters.build(fonts, images=30, seed=0)
    assert summary["fonts_kept"] == 2 and summary["refused"] == {"symbol font": 1}
    assert summary["unique_images"] == 10 and summary["duplicates_dropped"] == 10
    assert summary["variations_added"] == 20 and x.shape == (30, 28, 28) and len(y) == len(names) == 30
    assert list(y[:10]) == list(LETTERS) and set(y) <= set(LETTERS)
    again = letters.build(fonts, images=30, seed=0)
    assert np.array_equal(x, again[0]) and np.array_equal(y, again[1])
    assert letters.font_files([tmp_path]) == sorted(fonts)


def test_the_npz_loads_with_the_letters_as_class_names(tmp_path):
    import convscope as cs

    fonts = tmp_path / "fonts"
    fonts.mkdir()
    make_font(fonts / "good.ttf", GOOD)
    assert letters.main(["--out", str(tmp_path / "letters.npz"), "--fonts", str(fonts), "--images", "12"]) == 0
    data = cs.load(str(tmp_path / "letters.npz"))
    assert data.class_names == tuple(LETTERS) and len(data) == 12 and data.input_shape == (28, 28, 1)
