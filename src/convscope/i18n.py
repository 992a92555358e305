"""User-facing text in the reader's language (English and Korean), through gettext message catalogs.

Mark every sentence a person reads with `_()` (and `ngettext` for counts), with the numbers formatted in
after translation, so that the catalog holds one entry per sentence, not one per value:

    from ..i18n import _
    raise UserError(_("{path}: {count} labels for {images} images.").format(path=..., count=..., images=...))

The language is, first to last: `set_language()` / `--lang` for this context, `CONVSCOPE_LANG`, the locale
(`LC_ALL`, `LC_MESSAGES`, `LANG`: `ko_KR.UTF-8` -> Korean), else English. It lives in a `ContextVar`, so the
server can answer each request in the language its `Accept-Language` asks for without touching the others.
Catalogs are `locale/<lang>/LC_MESSAGES/convscope.mo` inside the package; a language without one reads English.
"""

from __future__ import annotations

import gettext as _gettext
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from .errors import UserError

DOMAIN = "convscope"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "ko")  # English is the source language: its "catalog" is the text itself
DEFAULT = "en"

_chosen: ContextVar[str | None] = ContextVar("convscope_language", default=None)


def normalize(tag: str | None) -> str | None:
    """'ko_KR.UTF-8', 'ko-KR', 'KO' -> 'ko'; a language convscope has no catalog for -> None."""
    if not tag:
        return None
    primary = tag.strip().split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
    return primary if primary in LANGUAGES else None


def set_language(tag: str | None) -> str:
    """Speak `tag` ('ko', 'en', 'ko_KR.UTF-8') in this context from now on; None goes back to the environment.

    Returns the language now in force. An unknown language is refused, naming the known ones.
    """
    if tag is None:
        _chosen.set(None)
        return language()
    code = normalize(tag)
    if code is None:
        raise UserError(
            gettext("language {tag} is not available; choose one of: {choices}.").format(
                tag=repr(tag[:40]), choices=", ".join(LANGUAGES)
            )
        )
    _chosen.set(code)
    return code


@contextmanager
def speaking(tag: str | None) -> Iterator[str]:
    """Within the block, speak `tag` (a language convscope lacks, or None, reads English); afterwards what was before.

    For work done on behalf of someone else: a server's job carries its request's language to the batch worker.
    """
    token = _chosen.set(normalize(tag) or DEFAULT)
    try:
        yield language()
    finally:
        _chosen.reset(token)


def from_accept_language(header: str | None) -> str | None:
    """The language an HTTP `Accept-Language` header prefers among ours, by quality value (RFC 9110 §12.5.4).

    'ko-KR,ko;q=0.9,en;q=0.8' -> 'ko'; 'fr, en;q=0.5' -> 'en'; 'en;q=0, ko;q=0.1' -> 'ko'; '*' or nothing of
    ours -> None (the server's own default decides). A tie keeps the header's order.
    """
    best: tuple[float, int, str] | None = None
    for position, item in enumerate((header or "")[:1000].split(",")):
        tag, _sep, params = item.partition(";")
        code = normalize(tag)
        if code is None:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _eq, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0  # a malformed weight counts as a refusal, not as a preference
        if not 0 < quality <= 1:
            continue
        if best is None or quality > best[0]:
            best = (quality, position, code)
    return None if best is None else best[2]


def language() -> str:
    """The language in force: set_language, else CONVSCOPE_LANG, else the locale's, else English."""
    chosen = _chosen.get()
    if chosen:
        return chosen
    for variable in ("CONVSCOPE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable)
        if value:
            # Like gettext itself: the first variable that is set decides, even when it names a language we lack.
            return normalize(value) or DEFAULT
    return DEFAULT


@cache
def translations(code: str) -> _gettext.NullTranslations:
    """The catalog for one language (read once per process); English and missing catalogs pass text through."""
    if code == DEFAULT:
        return _gettext.NullTranslations()
    return _gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[code], fallback=True)


def gettext(message: str) -> str:
    return translations(language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks `message` for the catalog without translating it: for text defined before anyone reads it (a
    module's constant), translated with `_()` where it is shown. `make catalogs` extracts `N_` too."""
    return message


_ = gettext
