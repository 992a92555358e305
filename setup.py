"""Compiles the message catalogs (locale/<lang>/LC_MESSAGES/convscope.po -> .mo) as part of every build.

pyproject.toml holds the project's metadata; this file only adds the step, so `pip install .`, `pip install -e .`
and a wheel build all ship working translations without a separate command. The .mo files are build outputs
(.gitignore); the .po files are the source.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

LOCALE = Path(__file__).parent / "src" / "convscope" / "locale"


def compile_catalogs(locale: Path = LOCALE) -> list[Path]:
    """Every .po under `locale` written as the .mo beside it (fuzzy entries left out, as msgfmt does)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(locale.glob("*/LC_MESSAGES/*.po")):
        with po.open("rb") as source:
            catalog = read_po(source, locale=po.parts[-3], domain=po.stem)
        mo = po.with_suffix(".mo")
        partial = mo.with_suffix(".mo.part")
        with partial.open("wb") as target:
            write_mo(target, catalog, use_fuzzy=False)
        partial.replace(mo)  # a reader never sees half a catalog
        written.append(mo)
    return written


class BuildWithCatalogs(build_py):
    """build_py that compiles the catalogs into the source tree first, so package-data (and an editable install,
    which reads the source tree) finds the .mo files."""

    def run(self) -> None:
        compile_catalogs()
        super().run()


setup(cmdclass={"build_py": BuildWithCatalogs})
