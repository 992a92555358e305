"""Hangul class names: glyphs (not boxes) in every figure and page, and terminal columns that line up.

The machine may or may not have a Korean font: the figures' checks hold either way (a glyph is drawn by some
font that has it), and the browser check asks Chromium which font drew the Hangul, which must be the one the
report embeds unless the system already has a Korean font.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import subprocess
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import wcwidth
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

import convscope as cs
from convscope import i18n
from convscope.evaluation import inspection, terminal
from convscope.presentation import fonts
from convscope.presentation.charts import confusion_matrix_figure
from convscope.presentation.evaluation import evaluation_html
from convscope.presentation.images import figure_png
from convscope.presentation.view import load_view

NAMES = ("가", "나", "다", "라", "마", "바", "사", "아", "자", "차")
MISSING = "missing from font"


def glyph_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if MISSING in str(w.message)]


@pytest.fixture(scope="module")
def hangul_run(tmp_path_factory):
    """The README's Korean example in small: an MLP on the 8 x 8 digits, classes named 가 ... 차, one epoch, with
    its report; the glyph warnings raised while it trained and drew are kept beside it."""
    out = tmp_path_factory.mktemp("runs") / "hangul-run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cs.train("digits", "mlp", epochs=1, out=out, class_names=",".join(NAMES), verbose=False)
    return out, glyph_warnings(caught)


def drawn(figure) -> tuple[np.ndarray, list[str]]:
    """The figure's pixels and the glyph warnings drawing it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy(), glyph_warnings(caught)


def label_pixels(figure, pixels: np.ndarray) -> list[np.ndarray]:
    """The pixels of each y tick label (one class name each) of the figure's first axes."""
    renderer = figure.canvas.get_renderer()
    height = pixels.shape[0]
    crops = []
    for label in figure.axes[0].get_yticklabels():
        box = label.get_window_extent(renderer)
        crops.append(pixels[int(height - box.y1) : int(height - box.y0), int(box.x0) : int(box.x1)])
    return crops


def ink(crops: list[np.ndarray]) -> np.ndarray:
    """How much dark there is in each crop (0 for white)."""
    return np.array([(255 - c[..., :3].astype(float).mean(axis=2)).sum() for c in crops])


def test_hangul_class_names_are_drawn_as_glyphs_not_boxes():
    cm = np.diag(np.arange(1, 11))
    figure = confusion_matrix_figure(cm, NAMES)
    pixels, missing = drawn(figure)
    assert missing == []

    # The same figure with DejaVu Sans forced, as before: a warning per syllable, each drawn as the box.
    boxed = confusion_matrix_figure(cm, NAMES)
    for text in boxed.findobj(Text):
        text.set_fontfamily(["DejaVu Sans"])
    boxed_pixels, boxed_missing = drawn(boxed)
    assert len(boxed_missing) == 10
    assert not np.array_equal(pixels, boxed_pixels)
    # Every class name's own pixels differ from the box's: a syllable's strokes hold about half its ink.
    glyphs, boxes = ink(label_pixels(figure, pixels)), ink(label_pixels(boxed, boxed_pixels))
    assert np.all(np.abs(glyphs - boxes) > 0.3 * boxes), (glyphs, boxes)


def test_the_users_font_family_comes_first_and_rcparams_stay_as_they_were():
    before = {k: matplotlib.rcParams[k] for k in ("font.family", "font.sans-serif", "font.serif")}
    with matplotlib.rc_context({"font.family": ["DejaVu Serif"]}):
        families = confusion_matrix_figure(np.eye(3, dtype=int), NAMES[:3]).axes[0].title.get_fontfamily()
        latin = confusion_matrix_figure(np.eye(3, dtype=int), ("a", "b", "c")).axes[0].title.get_fontfamily()
    assert families[0] == "DejaVu Serif" and len(families) == 2  # theirs, then one font with Hangul
    assert latin == ["DejaVu Serif"]  # text their fonts cover is left alone
    assert {k: matplotlib.rcParams[k] for k in before} == before


def test_a_page_carries_a_subset_of_the_fallback_with_just_its_characters():
    from fontTools.ttLib import TTFont

    css = fonts.font_face_css("<h1>가나 → 다 abc</h1>")
    data = base64.b64decode(re.search(r"base64,([^)]+)\)", css).group(1))
    assert set(TTFont(io.BytesIO(data)).getBestCmap()) == {ord(c) for c in "가나다"}
    assert len(data) < 10_000  # three syllables, not the 4.7 MB font
    assert fonts.font_face_css("<h1>an English page: 3 × 3 → 1 – done</h1>") == ""


@pytest.mark.slow
def test_training_with_hangul_names_draws_them_and_the_report_embeds_their_glyphs(hangul_run):
    run, missing = hangul_run
    assert missing == []  # every picture of the report, and the run's own figures
    page = (run / "report.html").read_text("utf-8")
    assert '<html lang="en">' in page
    css = re.search(r"@font-face \{[^}]*\}", page)
    assert css is not None and fonts.FAMILY in css.group(0)
    data = base64.b64decode(re.search(r"base64,([^)]+)\)", css.group(0)).group(1))
    from fontTools.ttLib import TTFont

    assert {ord(n) for n in NAMES} <= set(TTFont(io.BytesIO(data)).getBestCmap())


@pytest.mark.slow
def test_pages_say_the_language_in_force(hangul_run):
    from convscope import presentation

    evaluation = load_view(hangul_run[0]).evaluation
    curves = {"src": "data:,", "alt": "curves", "caption": None}
    i18n.set_language("ko")
    try:
        page = presentation.page(
            "compare.html", header=("run",), rows=[("가",)], numeric=(), notes=[], curves=curves, runs=[]
        )
        fragment = evaluation_html(evaluation)
    finally:
        i18n.set_language(None)
    assert '<html lang="ko">' in page and "@font-face" in page  # report.html renders through the same two
    assert 'class="convscope" lang="ko"' in fragment and "@font-face" in fragment


def test_the_drawing_page_carries_the_glyphs_of_its_class_names():
    pytest.importorskip("fastapi")
    from convscope.serving.page import drawing_page

    page = drawing_page("ko", "글씨 " + " ".join(NAMES))
    assert '<html lang="ko">' in page
    data = base64.b64decode(re.search(r"base64,([^)]+)\)", page).group(1))
    from fontTools.ttLib import TTFont

    assert {ord(c) for c in "글씨" + "".join(NAMES)} <= set(TTFont(io.BytesIO(data)).getBestCmap())


def column_ends(line: str) -> list[int]:
    """The terminal column where each space-separated cell of `line` ends (wide characters count two)."""
    return [wcwidth.width(line[: m.end()]) for m in re.finditer(r"\S+", line)]


@pytest.mark.slow
def test_per_class_table_and_confusion_matrix_line_up(hangul_run):
    lines = load_view(hangul_run[0]).evaluation.text().splitlines()
    table = lines[1:12]  # the header and ten classes
    assert {tuple(column_ends(line)) for line in table} == {tuple(column_ends(table[0]))}
    start = lines.index("confusion matrix (rows: true class, columns: predicted)")
    matrix = lines[start + 1 : start + 12]
    # the header's corner is three words; every row's cells end where the header's class names end
    assert {tuple(column_ends(line)[-11:]) for line in matrix[1:]} == {tuple(column_ends(matrix[0])[-11:])}


@pytest.mark.slow
def test_inspect_lines_every_column_up(hangul_run, capsys):
    from convscope.cli import main

    assert main(["inspect", str(hangul_run[0]), "--index", "3", "--color", "never"]) == 0
    out = capsys.readouterr().out.splitlines()
    bars = [line for line in out if re.search(r" (가|나|다|라|마|바|사|아|자|차) +\d+\.\d%", line)]
    assert len(bars) == 10
    # the picture (half blocks) on the left, then the class name and its percentage at the same columns
    ends = [[wcwidth.width(line[: m.end()]) for m in re.finditer(r"[가-힣]|\d+\.\d%", line)] for line in bars]
    assert all(e == ends[0] for e in ends)
    # names of mixed widths, as a learner writes them (에이, 비, 씨 beside Latin letters), drawn beside the image
    sample = inspection.select(load_view(hangul_run[0]).evaluation, "index", 1, index=3).samples[0]
    mixed = dataclasses.replace(sample, class_names=("에이", "b", "씨", "가나다", "e", "f", "g", "h", "아이", "j"))
    lines = terminal.render_sample(mixed, color=False, draw=True).splitlines()[1:]
    probabilities = [[wcwidth.width(line[: m.end()]) for m in re.finditer(r"\d+\.\d%", line)] for line in lines]
    assert len(probabilities) == 10 and all(p == probabilities[0] for p in probabilities)


def test_describe_lines_up_mixed_width_names():
    data = cs.Dataset(np.zeros((4, 2, 2, 1), np.uint8), np.array([0, 1, 2, 2]), ("가나다", "ab", "라x"), "mixed widths")
    from convscope.data.describe import describe

    rows = describe(data).splitlines()[5:8]
    assert [r.split()[0] for r in rows] == ["가나다", "ab", "라x"]
    assert {tuple(column_ends(r)[1:]) for r in rows} == {tuple(column_ends(rows[0])[1:])}


def has_korean_system_font() -> bool:
    try:
        found = subprocess.run(["fc-list", ":lang=ko"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(found.strip())


@pytest.mark.slow
@pytest.mark.browser
def test_report_shows_hangul_in_chromium_with_the_embedded_font(hangul_run, tmp_path):
    from playwright.sync_api import sync_playwright

    from browser import CHROMIUM_FLAGS, chromium_or_skip

    executable = chromium_or_skip()
    page_html = (hangul_run[0] / "report.html").read_text("utf-8")
    without = re.sub(r"<style>@font-face \{[^}]*\}</style>", "", page_html, count=1)
    assert without != page_html
    (tmp_path / "with.html").write_text(page_html, "utf-8")
    (tmp_path / "without.html").write_text(without, "utf-8")
    cell = "//td[normalize-space(.)='가']"
    shots, used = {}, {}
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            for name in ("with", "without"):
                page = context.new_page()
                page.goto((tmp_path / f"{name}.html").as_uri(), wait_until="load")
                page.evaluate("document.fonts.ready")
                target = page.locator(f"xpath={cell}").first
                shots[name] = target.screenshot()
                # Chromium's own account of the fonts that drew the cell's glyphs
                cdp = context.new_cdp_session(page)
                cdp.send("DOM.enable")
                cdp.send("CSS.enable")
                root = cdp.send("DOM.getDocument")["root"]["nodeId"]
                node = cdp.send("DOM.performSearch", {"query": cell})
                found = cdp.send("DOM.getSearchResults", {"searchId": node["searchId"], "fromIndex": 0, "toIndex": 1})
                assert root and found["nodeIds"]
                used[name] = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": found["nodeIds"][0]})["fonts"]
                page.close()
        finally:
            context.close()
    assert any(f["isCustomFont"] and f["glyphCount"] >= 1 for f in used["with"]), used["with"]
    assert not any(f["isCustomFont"] for f in used["without"])
    if not has_korean_system_font():
        # no Korean font on this machine: without the embedded font Chromium can only draw a box
        assert shots["with"] != shots["without"]


@pytest.mark.slow
def test_the_notebook_views_draw_hangul_without_a_glyph_warning(hangul_run):
    result = load_view(hangul_run[0]).evaluation
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pictures = [cs.show_random(result, 4, seed=0), cs.show_mistakes(result, 4, seed=0)]
        pngs = [figure_png(p.figure) for p in pictures]
        html = evaluation_html(result)  # the per-class chart and the confusion matrix, as a notebook shows them
    assert glyph_warnings(caught) == []
    assert all(png.startswith(b"\x89PNG") for png in pngs) and "@font-face" in html


def test_compare_lines_up_runs_named_in_hangul():
    from convscope.report.compare import RunRow, comparison_text
    from convscope.training.history import History

    def row(name: str, params: int) -> RunRow:
        return RunRow(name, Path(name), "cnn", params, 3, 2, 1.5, 0.9, 0.3, "digits", History([]))

    lines = comparison_text([row("합성곱-실험", 44_010), row("mlp", 271_370), row("가", 7)]).splitlines()
    rows = lines[2:5]
    assert {tuple(column_ends(line)[1:]) for line in rows} == {tuple(column_ends(rows[0])[1:])}
    # the model column starts at one terminal column in the header and in every row
    starts = [wcwidth.width(line[: re.search(r"\s(model|cnn)\s", line).start() + 1]) for line in lines[:1] + rows]
    assert len(set(starts)) == 1
