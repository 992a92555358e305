"""Fuzzing damaged run directories: evaluate, inspect, report, export and serve read a run whose
files were cut, overwritten or edited by hand, and either work or end in one `UserError` sentence."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from convscope import cli
from convscope.runs import ARCHITECTURE, CONFIG, HISTORY, METRICS, TEST_IMAGES, TEST_SET, WEIGHTS
from fuzzing import scaled, valid_or_user_error

FILES = [ARCHITECTURE, CONFIG, HISTORY, METRICS, TEST_IMAGES, TEST_SET, WEIGHTS]
JSON_FILES = [ARCHITECTURE, CONFIG, METRICS]


COMMANDS = ["evaluate", "inspect", "report", "export", "serve"]
commands = st.sampled_from(COMMANDS)


def run_command(command: str, run: Path) -> None:
    """A command that reads a run directory, in process: exit 0 or 2 with one line, never a traceback."""
    if command == "serve":
        from convscope.serving.app import create_app

        valid_or_user_error(create_app, run)
        return
    argv = {
        "evaluate": ["evaluate", str(run)],
        "inspect": ["inspect", str(run), "--no-images", "--seed", "0"],
        "report": ["report", str(run)],
        "export": ["export", str(run), "--format", "torchscript", "--out", str(run.parent / "m.pt")],
    }[command]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = cli.main(argv)
    assert code in (0, 2), (argv, err.getvalue()[-2000:])
    if code == 2:
        assert len(err.getvalue().strip().splitlines()) == 1, err.getvalue()


def damaged_copy(source: Path, tmp: str) -> Path:
    run = Path(tmp) / "run"
    shutil.copytree(source, run)
    return run


@scaled(0.05)
@given(file=st.sampled_from(FILES), cut=st.floats(0, 1), command=commands)
@example(TEST_SET, 0.5, "evaluate")
@example(TEST_IMAGES, 0.5, "inspect")
def test_truncated_files(mlp_run, file, cut, command):
    with tempfile.TemporaryDirectory() as tmp:
        run = damaged_copy(mlp_run, tmp)
        data = (run / file).read_bytes()
        (run / file).write_bytes(data[: int(len(data) * cut)])
        run_command(command, run)


@scaled(0.05)
@given(file=st.sampled_from(FILES), at=st.floats(0, 1), junk=st.binary(min_size=1, max_size=16), command=commands)
@example(HISTORY, 0.0, b"\xff\xfe\xfa", "evaluate")
def test_overwritten_bytes(mlp_run, file, at, junk, command):
    with tempfile.TemporaryDirectory() as tmp:
        run = damaged_copy(mlp_run, tmp)
        data = (run / file).read_bytes()
        start = int(len(data) * at)
        (run / file).write_bytes(data[:start] + junk + data[start + len(junk) :])
        run_command(command, run)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)


@scaled(0.05)
@given(file=st.sampled_from(JSON_FILES), data=st.data(), command=commands)
def test_edited_json_fields(mlp_run, file, data, command):
    with tempfile.TemporaryDirectory() as tmp:
        run = damaged_copy(mlp_run, tmp)
        content = json.loads((run / file).read_text())
        key = data.draw(st.sampled_from(sorted(content)))
        if data.draw(st.booleans()):
            del content[key]
        else:
            content[key] = data.draw(json_values)
        (run / file).write_text(json.dumps(content))
        run_command(command, run)


@pytest.mark.parametrize("key", ["spec", "input_shape", "num_classes", "class_names", "scaler", "format"])
def test_a_key_missing_from_the_architecture_is_named(mlp_run, tmp_path, key, capsys):
    run = damaged_copy(mlp_run, str(tmp_path))
    arch = json.loads((run / ARCHITECTURE).read_text())
    del arch[key]
    (run / ARCHITECTURE).write_text(json.dumps(arch))
    assert cli.main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"convscope evaluate: error: {run / ARCHITECTURE}: ") and "\n" not in err
    assert key in err or "format" in err
