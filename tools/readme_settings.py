"""Write the README's option list of `convscope train` from the settings table (`make readme-settings`).

The list between the two markers is `settings_table.markdown_table()`; tests/test_settings_table.py fails
when they differ, and this script makes them equal again. `--check` only says whether they differ (exit 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

from convscope.cli.options import presets
from convscope.settings_table import markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- settings table: begin (written by tools/readme_settings.py) -->\n"
END = "<!-- settings table: end -->\n"


def with_table(text: str) -> str:
    """`text` with the part between the markers replaced by the table."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not (begin and end):
        raise SystemExit(f"{README}: the markers {BEGIN.strip()} and {END.strip()} are missing.")
    return head + BEGIN + markdown_table(presets=presets()) + END + tail


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new = with_table(text)
    if "--check" in argv:
        return int(new != text)
    if new != text:
        README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
