"""Fonts that cover the text convscope draws: Hangul (and CJK) class names in figures and pages, with no setup.

matplotlib draws every glyph from the families of a text's font properties, in order (one font per family),
and DejaVu Sans, its default, has no Hangul: a class named 가 became an empty box and a "Glyph missing"
warning. `fit_fonts` gives the texts of a figure convscope built the user's own families (rcParams, as they
were when the figure was built) followed by the fonts that cover the characters those lack: a system font
first (known CJK families, then any installed font), else the fallback shipped as a dependency. The user's
rcParams are read, never written; the fallback is registered with matplotlib's font list, not made a default.

The fallback is NanumGothic (SIL Open Font License 1.1) from the `koreanize-matplotlib` wheel: 7.9 MB to
download against 15.5 MB for Noto Sans CJK (`noto-cjk-sans-otc`), all 11,172 Hangul syllables and 4,620
CJK ideographs. Its package sets global rcParams when imported, so convscope only reads its font files.

Pages (report.html, the notebook views, the drawing page) carry their own glyphs: `font_face_css` subsets
the fallback to the characters a page uses (fontTools) and inlines it as an `@font-face` data URL under the
family name `FAMILY`, which the stylesheets list last, after the system's fonts.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import io
import unicodedata
from collections.abc import Iterable
from functools import cache, lru_cache
from pathlib import Path

FAMILY = "convscope fallback"  # the @font-face name the stylesheets list after the system fonts
FALLBACK_PACKAGE = "koreanize_matplotlib"
FALLBACK_FILES = ("NanumGothic.ttf", "NanumGothicBold.ttf")
# Families with Hangul, tried before the fallback when installed: Noto/Source Han (Linux), Malgun Gothic
# (Windows), Apple SD Gothic Neo / AppleGothic (macOS), Nanum and Un fonts (Debian, Ubuntu, Colab).
KNOWN_CJK = (
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "Source Han Sans K",
    "Source Han Sans KR",
    "Malgun Gothic",
    "Apple SD Gothic Neo",
    "AppleGothic",
    "NanumGothic",
    "NanumBarunGothic",
    "UnDotum",
    "Baekmuk Gulim",
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "Noto Sans CJK TC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
)


def fallback_font(bold: bool = False) -> Path | None:
    """The shipped fallback font file, found without importing its package (whose import sets rcParams)."""
    spec = importlib.util.find_spec(FALLBACK_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / FALLBACK_FILES[int(bold)]
    return path if path.is_file() else None


def drawn_characters(text: str) -> set[int]:
    """The code points of `text` that need a glyph (not whitespace or control characters)."""
    return {ord(c) for c in text if not c.isspace() and c.isprintable()}


@cache
def coverage(path: str) -> frozenset[int]:
    """The code points a font file has glyphs for (its first face, as matplotlib draws it); read once."""
    from matplotlib import ft2font

    try:
        return frozenset(ft2font.FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):  # an unreadable font covers nothing
        return frozenset()


@cache
def _register_fallback() -> str | None:
    """Add the fallback's regular and bold faces to matplotlib's font list (once); its family name."""
    from matplotlib import font_manager

    regular = fallback_font()
    if regular is None:
        return None
    for path in (regular, fallback_font(bold=True)):
        if path is not None:
            font_manager.fontManager.addfont(str(path))
    # NanumGothicBold declares weight 600, so every bold title logged "Failed to find font weight bold for
    # NanumGothic, now using 600": list it as the family's bold (700), which its style name says it is.
    bold = str(fallback_font(bold=True))
    entries = font_manager.fontManager.ttflist
    # (addfont has just emptied findfont's cache, and nothing looked a font up since: no stale answer is kept)
    entries[:] = [dataclasses.replace(f, weight=700) if f.fname == bold else f for f in entries]
    return font_manager.FontProperties(fname=str(regular)).get_name()


def _font_file(family: str) -> str | None:
    """The file matplotlib draws `family` from (a generic family resolves through rcParams), or None."""
    from matplotlib import font_manager

    try:
        return font_manager.fontManager.findfont(
            font_manager.FontProperties(family=[family]), fallback_to_default=False
        )
    except ValueError:
        return None


def _system_families() -> list[str]:
    """Every installed family matplotlib knows, the known CJK ones first, the fallback's file left out."""
    from matplotlib import font_manager

    shipped = {str(fallback_font(bold)) for bold in (False, True)}
    installed = {f.name for f in font_manager.fontManager.ttflist if f.fname not in shipped}
    return [n for n in KNOWN_CJK if n in installed] + sorted(installed - set(KNOWN_CJK))


def families_for(text: str, families: Iterable[str] | None = None) -> list[str] | None:
    """The families to draw `text` with: `families` (default: rcParams['font.family']) followed by fonts for the
    characters they lack, system fonts before the fallback; None when `families` already cover it all."""
    from matplotlib import rcParams

    base = list(rcParams["font.family"] if families is None else families)
    missing = drawn_characters(text)
    for family in base:
        path = _font_file(family)
        if path is not None:
            missing -= coverage(path)
    if not missing:
        return None
    extra: list[str] = []
    fallback = _register_fallback()
    # Installed fonts first; the full scan of every installed font runs only when neither a known CJK font
    # nor the fallback has the characters (a rare script), and each file is read once per process.
    candidates = [n for n in _system_families() if n in KNOWN_CJK] + ([fallback] if fallback else [])
    for group in (candidates, [n for n in _system_families() if n not in KNOWN_CJK]):
        for family in group:
            path = _font_file(family)
            found = missing & coverage(path) if path is not None else set()
            if found and family not in base + extra:
                extra.append(family)
                missing -= found
            if not missing:
                return base + extra
    return base + extra if extra else None


def fit_fonts(figure):
    """Give every text of a convscope figure families that cover its characters (see `families_for`);
    a figure whose text the user's fonts already cover is left exactly as it is. Returns the figure."""
    from matplotlib.text import Text

    texts = [t for t in figure.findobj(Text) if isinstance(t, Text)]
    families = families_for("".join(t.get_text() for t in texts))
    if families is not None:
        for text in texts:
            text.set_fontfamily(families)
    return figure


def font_data(codepoints: Iterable[int]) -> tuple[bytes, str] | None:
    """The fallback font cut down to `codepoints` (those it has), as (bytes, format): WOFF2 where brotli is
    installed, else WOFF (zlib, always there); None when it has none of them or is not installed."""
    path = fallback_font()
    if path is None:
        return None
    wanted = frozenset(codepoints) & coverage(str(path))
    if not wanted:
        return None
    flavor = "woff2" if importlib.util.find_spec("brotli") is not None else "woff"
    return _subset(str(path), wanted, flavor), flavor


@lru_cache(maxsize=16)  # a live notebook view re-renders each epoch with the same characters
def _subset(path: str, wanted: frozenset[int], flavor: str) -> bytes:
    from fontTools import subset

    options = subset.Options()
    options.flavor = flavor
    options.hinting = False  # browsers hint on their own; the hinting instructions are most of a subset's bytes
    options.drop_tables += ["TSI0", "TSI1", "TSI2", "TSI3", "TSI5"]  # the font editor's sources
    font = subset.load_font(path, options, lazy=True)  # reads only the glyphs kept: 0.2 s instead of seconds
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(wanted))
    subsetter.subset(font)
    buffer = io.BytesIO()
    subset.save_font(font, buffer, options)
    return buffer.getvalue()


def font_face_css(text: str) -> str:
    """An `@font-face` rule for `FAMILY` holding the fallback's glyphs for the wide characters of `text`
    (a whole page's HTML, say) as a data URL, so the page shows them offline with no font installed;
    '' when the page needs none."""
    # Wide characters only (Hangul, kana, CJK ideographs): the arrows, dashes and signs of an English page are in
    # every system font, so such a page stays as it was.
    found = font_data(c for c in drawn_characters(text) if unicodedata.east_asian_width(chr(c)) in ("W", "F"))
    if found is None:
        return ""
    data, flavor = found
    url = f"data:font/{flavor};base64," + base64.b64encode(data).decode("ascii")
    return f'@font-face {{ font-family: "{FAMILY}"; src: url({url}) format("{flavor}"); font-display: block; }}'


def with_font_face(html: str, also: str = "") -> str:
    """`html` with an `@font-face` for the glyphs of its text and of `also` (text a script writes into the page
    later) as the first thing in its <head>, or in front of it when it is a fragment."""
    css = font_face_css(html + also)
    if not css:
        return html
    style = f"<style>{css}</style>"
    head = html.find("<head>")
    if head >= 0:
        at = head + len("<head>")
        return html[:at] + style + html[at:]
    return style + html
