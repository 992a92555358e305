"""CSV tables with one image per row: a label column plus one column per pixel.

The header row is optional (a first row with any non-number is a header).  With a header the
label column is the one named label/labels/class/y/target, otherwise the first column.  Pixels
are read as gray S x S (S*S columns) or RGB (3*S*S columns, R,G,B per pixel), by the same rule
as flat arrays (see `layout.py`).
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np

from ...errors import UserError
from ..raw import RawData, RawSplit

LABEL_COLUMNS = ("label", "labels", "class", "y", "target")


def load_csv(path: Path) -> RawData:
    file = str(path)
    rows = list(_rows(path))  # (line number, cells), blank lines dropped
    if not rows:
        raise UserError(f"{file}: holds no rows; the dataset is empty.")
    header: list[str] | None = None
    if not all(_is_number(c) for c in rows[0][1]):
        header = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
    width = len(header) if header else len(rows[0][1]) if rows else 0
    for line, cells in rows:
        if len(cells) != width:
            raise UserError(f"{file}: line {line} has {len(cells)} columns, but the table has {width}.")
    if not rows:
        raise UserError(f"{file}: holds a header but no rows; the dataset is empty.")
    if width < 2:
        raise UserError(f"{file}: has {width} column; it needs a label column and pixel columns.")
    label_col = _label_column(header)
    label_name = header[label_col] if header else "column 1"
    labels = [cells[label_col].strip() for _, cells in rows]
    pixel_cells = [cells[:label_col] + cells[label_col + 1 :] for _, cells in rows]
    pixels = _pixels(pixel_cells, [line for line, _ in rows], label_col, file)
    split = RawSplit(pixels, _label_values(labels), file, "pixels", label_name)
    return RawData(split)


def _rows(path: Path):
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: the gzip data is truncated or corrupt ({exc}).") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text table (byte {exc.start} cannot be decoded).") from None
    reader = csv.reader(io.StringIO(text))
    try:
        for cells in reader:
            if cells and any(c.strip() for c in cells):
                yield reader.line_num, cells
    except csv.Error as exc:
        raise UserError(f"{path}: not a valid CSV table ({exc}).") from None


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


def _label_values(labels: list[str]) -> np.ndarray:
    """Whole numbers ('3', '3.0') become integers; anything else stays a class name."""
    try:
        values = np.array([float(v) for v in labels])
    except ValueError:
        return np.array(labels)
    if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values  # fractional labels: raw.py names the offending value


def _pixels(cells: list[list[str]], lines: list[int], label_col: int, file: str) -> np.ndarray:
    """Numbers as uint8 when every value is a whole number in 0..255 (the usual case), else float32."""
    try:
        values = np.array([[float(c) for c in row] for row in cells], dtype=np.float64)
    except ValueError:
        for line, row in zip(lines, cells):
            for index, cell in enumerate(row):
                if not _is_number(cell):
                    column = index + 1 + (index >= label_col)  # 1-based, counting the label column
                    raise UserError(f"{file}: line {line}, column {column} holds '{cell}', not a number.") from None
        raise UserError(f"{file}: holds pixel values that are not numbers.") from None
    if values.size and np.all(np.isfinite(values)) and values.min() >= 0 and values.max() <= 255:
        if np.all(values == np.round(values)):
            return values.astype(np.uint8)
    return values  # floats; raw.py checks NaN/inf and makes them float32
