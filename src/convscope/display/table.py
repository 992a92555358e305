"""Plain-text tables padded by display width (East Asian wide characters count as two columns)."""

from __future__ import annotations

from collections.abc import Sequence

from wcwidth import wcswidth


def width(text: str) -> int:
    measured = wcswidth(text)
    return measured if measured >= 0 else len(text)  # control characters: count them as one each


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] = ()) -> str:
    """Columns separated by two spaces; `right[i]` aligns column i to the right (numbers)."""
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(width(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for row in table:
        cells = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - width(cell))
            cells.append(pad + cell if i < len(right) and right[i] else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
