"""CSV tables with one image per row: a label column plus one column per pixel.

The header row is optional: a first row with two or more non-numbers, or with a label-column
name, is a header (one non-number alone is a class name: "cat,0,255,...").  With a header the
label column is the one named label/labels/class/y/target, otherwise the first column.  Pixels
are read as gray S x S (S*S columns) or RGB (3*S*S columns, R,G,B per pixel), by the same rule
as flat arrays (see `layout.py`).

A well-formed table is parsed by numpy's C reader (an MNIST-sized CSV in seconds); anything it
refuses is re-read row by row with the `csv` module, only to name the offending line and column.
"""

from __future__ import annotations

import csv
import gzip
import io
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...checks import cut
from ...errors import UserError
from ...i18n import _
from ..raw import RawData, RawSplit, limits

LABEL_COLUMNS = ("label", "labels", "class", "y", "target")


def load_csv(path: Path) -> RawData:
    file = str(path)
    text = _read_text(path)
    first = next(_rows(text, file), None)
    if first is None:
        raise UserError(_("{file}: holds no rows; the dataset is empty.").format(file=file))
    header = [c.strip() for c in first[1]] if _is_header(first[1]) else None
    width = len(first[1])
    if width < 2:
        raise UserError(_("{file}: has 1 column; it needs a label column and pixel columns.").format(file=file))
    label_col = _label_column(header)
    try:
        pixels, labels = _parse_fast(text, header is not None, label_col, width)
    except ValueError:
        pixels, labels = _parse_slow(text, header is not None, label_col, width, file)
    if len(labels) == 0:
        raise UserError(_("{file}: holds a header but no rows; the dataset is empty.").format(file=file))
    label_name = header[label_col] if header else _("column 1")
    return RawData(RawSplit(_narrow(pixels), _label_values(labels), file, "pixels", label_name))


def _read_text(path: Path) -> str:
    allowed = limits()
    try:
        allowed.check_bytes(path.stat().st_size, str(path), _("its text"))
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as unzipped:
                raw = unzipped.read(allowed.max_bytes + 1)  # never more than the limit, whatever the file claims
            allowed.check_bytes(len(raw), str(path), _("its decompressed text"))
        return raw.decode("utf-8-sig")
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(
            _("{path}: the gzip data is truncated or corrupt ({exc}).").format(path=path, exc=exc)
        ) from None
    except UnicodeDecodeError as exc:
        raise UserError(
            _("{path}: not a UTF-8 text table (byte {start} cannot be decoded).").format(path=path, start=exc.start)
        ) from None


def _rows(text: str, file: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for every non-blank row; the number of the line the row starts on (a quoted cell
    may run over several lines, and the reader's `line_num` is where the row ended)."""
    reader = csv.reader(io.StringIO(text))
    start = 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UserError(_("{file}: not a valid CSV table ({exc}).").format(file=file, exc=exc)) from None


def _parse_fast(text: str, has_header: bool, label_col: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy's C parser; raises ValueError on anything irregular, so the caller falls back."""
    rows = sum(1 for line in text.splitlines() if line.strip())
    if text.count(",") != (width - 1) * rows:
        raise ValueError("ragged rows or quoted commas")  # usecols would silently drop extra columns
    skip = 1 if has_header else 0
    pixel_cols = [c for c in range(width) if c != label_col]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported by the caller
        options: dict[str, Any] = {"delimiter": ",", "skiprows": skip, "quotechar": '"'}
        pixels = np.loadtxt(io.StringIO(text), usecols=pixel_cols, dtype=np.float64, ndmin=2, **options)
        labels = np.loadtxt(io.StringIO(text), usecols=label_col, dtype=str, ndmin=1, **options)
    return pixels, np.char.strip(labels)


def _parse_slow(text: str, has_header: bool, label_col: int, width: int, file: str) -> tuple[np.ndarray, np.ndarray]:
    """Row by row, to say which line is ragged and which cell is not a number."""
    rows = list(_rows(text, file))[1 if has_header else 0 :]
    for line, cells in rows:
        if len(cells) != width:
            raise UserError(
                _("{file}: line {line} has {n_cells} columns, but the table has {width}.").format(
                    file=file, line=line, n_cells=len(cells), width=width
                )
            )
    for line, cells in rows:
        for column, cell in enumerate(cells, start=1):
            if column - 1 != label_col and not _is_number(cell):
                # repr: a quoted cell may hold a newline or a comma; cut: or a megabyte
                raise UserError(
                    _("{file}: line {line}, column {column} holds {cell!r}, not a number.").format(
                        file=file, line=line, column=column, cell=cut(cell, 40)
                    )
                )
    pixels = np.array([[float(c) for i, c in enumerate(cells) if i != label_col] for _, cells in rows])
    labels = np.array([cells[label_col].strip() for _, cells in rows], dtype=str)
    return pixels.reshape(len(rows), width - 1), labels


def _is_header(cells: list[str]) -> bool:
    """Two or more non-numbers, or a label-column name: a header.

    A single non-number alone is a class name in a headerless table ("cat,0,255,...").
    """
    words = [c.strip().lower() for c in cells if not _is_number(c)]
    return len(words) > 1 or any(w in LABEL_COLUMNS for w in words)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _label_column(header: list[str] | None) -> int:
    if header:
        lowered = [h.lower() for h in header]
        for name in LABEL_COLUMNS:
            if name in lowered:
                return lowered.index(name)
    return 0


def _label_values(labels: np.ndarray) -> np.ndarray:
    """Whole numbers ('3', '3.0') become integers; anything else stays a class name."""
    try:
        values = labels.astype(np.float64)
    except ValueError:
        return labels
    # Past 2**53 a float no longer holds every whole number, and past 2**63 the cast wraps around: such
    # labels stay floats, and raw.py names them as written.
    exact = np.all(np.isfinite(values)) and np.all(np.abs(values) < 2**53)
    if exact and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values  # fractional or huge labels: raw.py names the offending value


def _narrow(values: np.ndarray) -> np.ndarray:
    """uint8 when every value is a whole number in 0..255 (the usual case); floats otherwise."""
    whole = values.size and np.all(np.isfinite(values)) and values.min() >= 0 and values.max() <= 255
    if whole and np.all(values == np.round(values)):
        return values.astype(np.uint8)
    return values  # raw.py checks NaN/inf and makes them float32
