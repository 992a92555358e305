"""The drawing page at `/`: a Jinja template in the request's language, its script in `static/app.js`."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from .. import i18n
from ..i18n import _, speaking
from ..presentation.fonts import with_font_face

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"


def page_texts() -> dict[str, str]:
    """The sentences app.js writes into the page, in the language in force; `{fields}` are filled by the script."""
    return {
        "yourDrawing": _("your drawing"),
        "yourDrawingLive": _("your drawing (live)"),
        "upload": _("upload: {name}"),
        "sure": _("{percent} sure"),
        "modelInput": _("model input · framing {framing}"),
        "firstChannels": _("first {count} channels"),
        "channel": _("{layer} channel {index}: {low} .. {high}"),
        "nothingYet": _("nothing yet"),
        "drawOrUpload": _("draw or upload an image to see them"),
        "notAvailable": _("n/a"),
    }


@cache
def _page_template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env.get_template("index.html")


def drawing_page(lang: str, shown: str) -> str:
    """The drawing page in `lang`, carrying the glyphs of its own text, its script's and `shown` (the model's
    name and class names, which the script writes in later), so Hangul shows with no Korean font installed."""
    with speaking(lang) as code:
        texts = page_texts()
        html = _page_template().render(lang=code, texts=texts)
    return with_font_face(html, also="".join(texts.values()) + shown)
