"""Every field a command reads from a run directory is checked where runs are read: a value convscope never
writes (non-finite, inverted, out of range, of the wrong type) is one sentence naming the file and the
field, exit 2, for every command, never a traceback from deep inside the report or the framing code."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from convscope import cli
from convscope.runs import ARCHITECTURE, CONFIG, METRICS

A, C, M = ARCHITECTURE, CONFIG, METRICS
CASES = {
    "pixel_range inverted past float32": (A, ("input_contract", "pixel_range"), [1e300, -1e300], "input_contract"),
    "pixel_range inverted": (A, ("input_contract", "pixel_range"), [16, 0], "input_contract"),
    "pixel_range empty": (A, ("input_contract", "pixel_range"), [5, 5], "input_contract"),
    "pixel_range past float32": (A, ("input_contract", "pixel_range"), [-1e300, 1e300], "input_contract"),
    "threshold past 1": (A, ("input_contract", "threshold"), 5.0, "input_contract"),
    "fraction huge": (A, ("input_contract", "fraction"), 1e300, "input_contract"),
    "fraction zero": (A, ("input_contract", "fraction"), 0.0, "input_contract"),
    "fraction_range inverted": (A, ("input_contract", "fraction_range"), [1.0, 0.0], "input_contract"),
    "offset_limit negative": (A, ("input_contract", "offset_limit"), -5.0, "input_contract"),
    "scaler past float32": (A, ("scaler",), {"minimum": -1e300, "maximum": 1e300}, "scaler"),
    "scaler span below float32": (A, ("scaler",), {"minimum": 0, "maximum": 1e-300}, "scaler"),
    "test_accuracy over 1": (M, ("test_accuracy",), 5.0, "test_accuracy"),
    "test_loss negative": (M, ("test_loss",), -1.0, "test_loss"),
    "train_size text": (C, ("data", "train_size"), "x", "data.train_size"),
    "imported text": (C, ("imported",), "x", "imported"),
    "validation_split text": (C, ("fit", "validation_split"), "x", "fit.validation_split"),
    "batch_size zero": (C, ("fit", "batch_size"), 0, "fit.batch_size"),
}


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "digit.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_a_field_convscope_never_writes_is_named_by_every_command(mlp_run, tmp_path, image, capsys, case):
    file, path, value, field = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(mlp_run, run)
    content = json.loads((run / file).read_text())
    target = content
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    (run / file).write_text(json.dumps(content))
    for argv in (["evaluate", str(run)], ["report", str(run)], ["predict", str(run), str(image)]):
        capsys.readouterr()
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err, err
        assert str(run / file) in err and field in err, err
