"""Names read from files (class names, file and run names) reach the terminal escaped: an escape code or a
bidirectional override in a name is printed as `\\x1b` / `\\u202e`, never raw, by every command that shows it;
Korean names stay as they are and tables align by terminal columns."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import convscope as cs
from convscope import cli
from convscope.checks import pad, printable, text_width
from convscope.runs import ARCHITECTURE

RED, CLEAR, RTL = "\x1b[31m", "\x1b[2J", "\u202e"
HOSTILE = [f"{RED}zero", f"one{CLEAR}", f"{RTL}two", "셋", "four\nfive", "5", "6", "7", "8", "9"]


def test_printable_escapes_controls_and_keeps_text():
    assert printable(f"{RED}a\tb\n{RTL}c\x9bd") == "\\x1b[31ma\\tb\\n\\u202ec\\x9bd"
    assert printable("숫자 7, café") == "숫자 7, café"
    assert text_width("숫자") == 4 and pad("숫자", 6, ">") == "  숫자"


def assert_no_raw_controls(text: str) -> None:
    assert RED not in text and CLEAR not in text and RTL not in text and "four\nfive" not in text, text


@pytest.fixture(scope="module")
def hostile_run(mlp_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("names") / f"run{RED}x"
    shutil.copytree(mlp_run, run)
    arch = json.loads((run / ARCHITECTURE).read_text())
    arch["class_names"] = HOSTILE
    (run / ARCHITECTURE).write_text(json.dumps(arch))
    return run


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "{run}"],
        ["inspect", "{run}", "--no-images", "--seed", "0", "--mistakes"],
        ["predict", "{run}", "{image}"],
        ["compare", "{run}", "{run}"],
    ],
    ids=["evaluate", "inspect", "predict", "compare"],
)
def test_commands_print_hostile_names_escaped(hostile_run, tmp_path, capsys, argv):
    image = tmp_path / f"digit{CLEAR}.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    assert cli.main([a.format(run=hostile_run, image=image) for a in argv]) == 0
    out = capsys.readouterr().out
    assert_no_raw_controls(out)
    assert "\\x1b[" in out or "\\u202e" in out


def test_an_error_quoting_a_hostile_file_name_is_one_escaped_line(tmp_path, capsys):
    missing = tmp_path / f"no{CLEAR}run\nhere"
    assert cli.main(["evaluate", str(missing)]) == 2
    err = capsys.readouterr().err
    assert_no_raw_controls(err)
    assert err.count("\n") == 1 and "\\x1b[2J" in err


def test_the_data_summary_and_model_summary_escape_names():
    data = cs.Dataset(np.zeros((10, 8, 8, 1), np.uint8), np.arange(10), tuple(HOSTILE), f"file{CLEAR}.npz")
    text = cs.describe(data)
    assert_no_raw_controls(text)
    assert "\\x1b[2J" in text
    table = [line for line in text.splitlines() if line.startswith("  ") and "%" in line]
    assert len({text_width(line[: line.index("%")]) for line in table}) == 1  # one column, Korean included
