"""Limits and value checks shared by every entry point: data loaders, spec parser, CLI, API.

`Limits` bounds what a file or a spec may ask of memory (changeable through environment
variables, see README "Bad input"). The `check_*` functions give the API the verdict
`cli/options.py` gives flags in argparse, as a `UserError` naming the setting, for callers of
`cs.train(...)` and the settings types, which never pass through argparse (`settings_table.py` says which
check each setting gets). `quote` and `cut`
keep every message short whatever value it names.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass

from .errors import UserError
from .i18n import _

MAX_SEED = 2**32 - 1  # what every generator we seed (numpy's legacy one included) accepts
MAX_COUNT = 1_000_000  # the largest count any "how many" setting takes: beyond it a typo, never an intention
MAX_LR = 10.0  # Adam diverges to NaN long before this; a larger rate is a typo


@dataclass(frozen=True)
class Limits:
    """What a data file or a model spec may ask of memory, checked before anything is allocated.

    Each can be raised (or lowered) with the environment variable named beside it.
    """

    max_bytes: int = 4 * 2**30  # CONVSCOPE_MAX_DATA_BYTES: one file's values, as declared or decompressed
    max_classes: int = 100_000  # CONVSCOPE_MAX_CLASSES: so labels 0..K-1 name at most this many classes
    max_image_pixels: int = 4096 * 4096  # CONVSCOPE_MAX_IMAGE_PIXELS: width x height of one picture
    max_params: int = 2**28  # CONVSCOPE_MAX_PARAMS: weights of a model built to train (1 GiB in float32)
    max_spec_values: int = 10_000  # CONVSCOPE_MAX_SPEC_VALUES: values in a model spec, YAML aliases expanded

    def check_bytes(self, size: int, where: str, what: str | None = None) -> None:
        if size > self.max_bytes:
            what = what or _("its values")
            raise UserError(
                _(
                    "{where}: {what} take {size:,} bytes, over the limit of {max_bytes:,} (raise it with the environment variable CONVSCOPE_MAX_DATA_BYTES)."
                ).format(where=where, what=what, size=size, max_bytes=self.max_bytes)
            )

    def check_pixels(self, width: int, height: int, where: str) -> None:
        if width * height > self.max_image_pixels:
            raise TooManyPixels(
                _(
                    "{where}: the image is {width} x {height} = {pixels:,} pixels, over the limit of {max_image_pixels:,} (raise it with the environment variable CONVSCOPE_MAX_IMAGE_PIXELS)."
                ).format(
                    where=where,
                    width=width,
                    height=height,
                    pixels=width * height,
                    max_image_pixels=self.max_image_pixels,
                ),
                width,
                height,
            )


class TooManyPixels(UserError):
    """A picture over `max_image_pixels`, known from its header before decoding (the server answers 413)."""

    def __init__(self, message: str, width: int, height: int) -> None:
        super().__init__(message)
        self.width, self.height = width, height

    def __reduce__(self):  # to cross from a batch worker process with its numbers
        return type(self), (str(self), self.width, self.height)


_ENV = {
    "max_bytes": "CONVSCOPE_MAX_DATA_BYTES",
    "max_classes": "CONVSCOPE_MAX_CLASSES",
    "max_image_pixels": "CONVSCOPE_MAX_IMAGE_PIXELS",
    "max_params": "CONVSCOPE_MAX_PARAMS",
    "max_spec_values": "CONVSCOPE_MAX_SPEC_VALUES",
}


def limits() -> Limits:
    """The defaults, with any set in the environment (read at each call: no module state)."""
    values = {}
    for field_name, variable in _ENV.items():
        text = os.environ.get(variable)
        if text is None:
            continue
        try:
            values[field_name] = int(text.replace("_", ""))
        except ValueError:
            values[field_name] = -1
        if values[field_name] < 1:
            raise UserError(
                _("environment variable {variable} must be a positive integer, got {text!r}.").format(
                    variable=variable, text=text[:40]
                )
            )
    return Limits(**values)


def check_number(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number inside the bounds, returned as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(_("{name} must be a number, got {number}.").format(name=name, number=quote(value)))
    number = float(value)
    inside = math.isfinite(number)
    if inside and low is not None:
        inside = number > low if low_open else number >= low
    if inside and high is not None:
        inside = number < high if high_open else number <= high
    if not inside:
        templates = (
            _("{name} must be a finite number, got {number!r}."),
            _("{name} must be a finite number {bound}, got {number!r}."),
            _("{name} must be a finite number in {interval}, got {number!r}."),
        )
        raise UserError(_bounded(templates, low, high, low_open, high_open).format(name=name, number=number))
    return number


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """A whole number (bools refused) inside [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(_("{name} must be an integer, got {number}.").format(name=name, number=quote(value)))
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        templates = (
            _("{name} must be an integer, got {number}."),
            _("{name} must be an integer {bound}, got {number}."),
            _("{name} must be an integer in {interval}, got {number}."),
        )
        raise UserError(_bounded(templates, low, high, False, False).format(name=name, number=number))
    return number


def check_seed(value: object, name: str = "seed") -> int:
    return check_int(name, value, 0, MAX_SEED)


def _bounded(templates: tuple[str, str, str], low, high, low_open: bool, high_open: bool) -> str:
    """The one of (unbounded, one bound, interval) sentence templates that fits, with the bounds filled in;
    the bounds are written in symbols ('>= 0', '[0, 1)'), which read the same in every language."""
    unbounded, one_bound, interval = templates
    if low is None and high is None:
        return unbounded
    if high is None:
        return one_bound.replace("{bound}", f"{'>' if low_open else '>='} {number_text(low)}")
    if low is None:
        return one_bound.replace("{bound}", f"{'<' if high_open else '<='} {number_text(high)}")
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    return interval.replace("{interval}", f"{left}{number_text(low)}, {number_text(high)}{right}")


def number_text(value: float) -> str:
    """A bound as every message writes it: whole numbers in full with thousands separators (4,294,967,295,
    never 4.29497e+09, so the bound named is the bound checked), others as %g (1e-07)."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def quote(value: object, limit: int = 60) -> str:
    """repr of a value, cut to `limit` characters: an error message never quotes a whole file,
    a huge number or a YAML alias bomb (reprlib stops at depth 3 and a few items per level)."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = short.maxlong = limit
    short.maxlevel = 3
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_random_shift(pixels: int, input_shape: tuple[int, ...]) -> None:
    """A shift of half the image or more can move every stroke out of the frame: refuse it."""
    if len(input_shape) == 3 and pixels > 0 and 2 * pixels >= min(input_shape[:2]):
        h, w = input_shape[:2]
        raise UserError(
            _(
                "random_shift {pixels} pixels is too large for {h}x{w} images; it must be below half the smaller side, at most {largest}."
            ).format(pixels=pixels, h=h, w=w, largest=(min(h, w) - 1) // 2)
        )


def cut(text: str, limit: int = 60) -> str:
    """Plain text cut to `limit` characters, for lists of names quoted in a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Bidirectional embeddings, overrides and isolates: they reorder what follows them on the line, so a
# name holding one can make a terminal line read other than it is.
_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))


def printable(text: object) -> str:
    """`text` (a class name, a file name) safe to print: control characters (C0, DEL, C1) and bidirectional
    controls are written as escapes (`\\x1b`, `\\u202e`), so a name read from a file never moves the
    cursor, recolours or clears the terminal, or starts a new line. Everything else, Korean included, stays."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ord(ch) in _BIDI
        else ch
        for ch in str(text)
    )


def text_width(text: str) -> int:
    """Columns `text` takes in a terminal (East Asian wide characters count two), for aligning tables."""
    from wcwidth import wcswidth

    columns = wcswidth(text)
    return columns if columns >= 0 else len(text)


def pad(text: str, columns: int, align: str = "<") -> str:
    """`text` padded with spaces to `columns` terminal columns, aligned left ("<") or right (">")."""
    fill = " " * max(0, columns - text_width(text))
    return fill + text if align == ">" else text + fill
