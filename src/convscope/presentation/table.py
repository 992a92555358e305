"""Plain-text tables padded by display width (East Asian wide characters count as two columns)."""

from __future__ import annotations

from collections.abc import Sequence

from ..checks import pad, text_width


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] = ()) -> str:
    """Columns separated by two spaces; `right[i]` aligns column i to the right (numbers)."""
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(text_width(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(
            pad(cell, widths[i], ">" if i < len(right) and right[i] else "<") for i, cell in enumerate(row)
        ).rstrip()
        for row in table
    ]
    return "\n".join(lines)
