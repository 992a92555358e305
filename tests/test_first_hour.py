"""What a newcomer meets between `make demo` and a first served model: start-up, mistyped commands, piped
output, Ctrl-C, readable objects in a plain REPL, and the progress bar's wording."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)


def convscope(*args: str, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convscope", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=300, **kwargs
    )


HEAVY = ("torch", "numpy", "matplotlib", "scipy", "PIL", "yaml", "optuna", "fastapi", "safetensors", "h5py")


@pytest.mark.parametrize("flags", [["--help"], ["--version"], ["train", "--help"], ["sweep", "--help"]])
def test_help_and_version_import_no_heavy_module(flags):
    probe = (
        "import sys\nfrom convscope.cli import main\n"
        f"try:\n    main({flags!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    done = python(probe)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
    assert "convscope" in done.stdout


def test_import_convscope_is_light_and_every_public_name_resolves():
    probe = (
        "import sys, convscope as cs\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "missing = [n for n in cs.__all__ if getattr(cs, n, None) is None]\n"
        "print(missing, sorted(set(cs.__all__) - set(dir(cs))))\n"
        "print(cs.load.__module__, cs.experiment.__module__, cs.fit.__module__, cs.evaluate.__module__)\n"
    )
    lines = python(probe).stdout.splitlines()
    assert lines[0] == "[]"
    assert lines[1] == "[] []"
    assert lines[2] == "convscope.data.load convscope.experiment convscope.training.fit convscope.report.result"


@pytest.mark.parametrize(
    "first",
    ["", "import convscope.report.html", "import convscope.experiment", "from convscope.report import view"],
)
def test_functions_named_like_their_modules_stay_functions(first):
    """`cs.report` and `cs.experiment` are functions although convscope.report and convscope.experiment are
    modules too: importing the module (first, or later) must not replace the function."""
    probe = (
        f"{first}\nimport convscope as cs, types\n"
        "import convscope.report.html, convscope.experiment, convscope.data.load, convscope.training.fit\n"
        "import convscope.data.describe, convscope.evaluation.evaluate, convscope.models.summary\n"
        "from convscope import data, evaluation, models, training\n"
        "values = [cs.report, cs.experiment, cs.load, cs.describe, cs.fit, data.load, data.describe,\n"
        "          evaluation.evaluate, models.summary, training.fit, cs.summary]\n"
        "print([type(v).__name__ for v in values])"
    )
    done = python(probe)
    assert done.stdout.split() == ["['function',"] + ["'function',"] * 9 + ["'function']"], done.stderr
