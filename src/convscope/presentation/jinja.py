"""One jinja2 environment for every HTML convscope writes: `report.html`, `compare.html` and the
notebook reprs render the same section templates, so a table looks the same in all three."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from .. import i18n
from ..i18n import language
from ..models.sizes import keras_shape
from .fonts import with_font_face
from .images import figure_png, png_data_uri

TEMPLATES = Path(__file__).with_name("templates")


@cache  # one environment per process: jinja2 compiles each template once and keeps it
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every value is escaped unless it is Markup made here
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],  # {% trans %} and _() in templates: the same catalogs as the Python code
    )
    # newstyle: `_()` escapes and formats like the Python side (`_("{n} images", n=...)`); the callables read the
    # language as each page renders, so the one cached environment speaks every language.
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["number"] = number
    env.filters["shape"] = keras_shape
    env.globals["language"] = language  # the `lang` of every page and fragment, read as it renders
    return env


def render(name: str, **context) -> str:
    """A template by file name (e.g. `report.html`, `sections/model.html`) with `context`."""
    return environment().get_template(name).render(**context)


def page(name: str, **context) -> str:
    """A whole page (`report.html`, `compare.html`) that carries the glyphs of its own text (`fonts.with_font_face`),
    so it shows Hangul offline on a machine with no Korean font."""
    return with_font_face(render(name, **context))


def fragment(*sections: tuple[str, dict]) -> str:
    """Sections for a notebook cell, each a (template, context) pair: the section templates inside a `div.convscope` that carries the
    report's stylesheet (every rule is scoped to that class, so the notebook's own look is untouched)."""
    return with_font_face(render("notebook.html", sections=sections))


def number(value: object, digits: int = 4) -> str:
    """Floats with `digits` decimals, None as a dash, anything else as text."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def image_tag(png: bytes, alt: str) -> Markup:
    """An inline <img> for a table cell (a sample strip, say), safe to pass through autoescaping."""
    return Markup('<img src="{}" alt="{}">').format(png_data_uri(png), alt)


def picture(figure, alt: str, caption: str | None = None, png=figure_png) -> dict:
    """What the `figure` macro takes: a data URI, the alt text and an optional caption. `png` turns the
    figure into bytes (the report passes its own, which it can also write to a file)."""
    return {"src": png_data_uri(png(figure)), "alt": alt, "caption": caption}
