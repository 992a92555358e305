"""Fuzzing damaged run directories: evaluate, inspect, report, export and serve read a run whose
files were cut, overwritten or edited by hand, and either work or end in one `UserError` sentence;
and damaged `--resume` states, which either resume or end in one sentence leaving the state as it was."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from convscope import cli
from convscope.runs import ARCHITECTURE, CONFIG, HISTORY, METRICS, TEST_IMAGES, TEST_SET, WEIGHTS
from convscope.training.checkpoint import state_dir_for
from fuzzing import scaled, valid_or_user_error
from resume_states import STATE_FILE, copy_state, read, train_args, write

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


@pytest.mark.slow
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


@pytest.mark.slow
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


# --- damaged --resume state (`.<out>.resume/`): a valid resume, or one sentence with the state left as it was


def resume(folder: Path, out: Path) -> None:
    """`convscope train --resume` in process: exit 0, or exit 2 with one line and the state untouched."""
    state = state_dir_for(out)
    before = {p.name: p.read_bytes() for p in state.iterdir()}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = cli.main(train_args(folder, out, "--resume"))
    assert code in (0, 2), err.getvalue()[-2000:]
    if code == 2:
        assert len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
        assert {p.name: p.read_bytes() for p in state.iterdir()} == before


def json_path(value, data) -> tuple:
    """A random path into nested JSON (dict keys and list indexes), at least one step long."""
    path: tuple = ()
    while isinstance(value, (dict, list)) and value and (not path or data.draw(st.booleans())):
        key = data.draw(st.sampled_from(sorted(value) if isinstance(value, dict) else range(len(value))))
        path, value = (*path, key), value[key]
    return path


@scaled(0.01)
@given(data=st.data())
def test_edited_resume_metadata(interrupted, data):
    with tempfile.TemporaryDirectory() as tmp:
        out = copy_state(interrupted, Path(tmp))
        path = state_dir_for(out) / STATE_FILE
        meta, tensors = read(path)
        where = json_path(meta, data)
        parent = meta
        for key in where[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = data.draw(json_values)
        write(path, meta, tensors)
        resume(interrupted[0], out)


tensor_values = st.builds(
    lambda shape, dtype, fill: torch.full(shape, fill).to(dtype),
    st.lists(st.integers(0, 4), max_size=3).map(tuple),
    st.sampled_from([torch.float32, torch.float64, torch.int64, torch.uint8, torch.bool]),
    st.sampled_from([0.0, 1.0, -3.0, float("nan"), float("inf")]),
)


@scaled(0.01)
@given(data=st.data())
def test_damaged_resume_tensors(interrupted, data):
    with tempfile.TemporaryDirectory() as tmp:
        out = copy_state(interrupted, Path(tmp))
        path = state_dir_for(out) / STATE_FILE
        meta, tensors = read(path)
        key = data.draw(st.sampled_from(sorted(tensors)) | st.text(min_size=1, max_size=8))
        if key in tensors and data.draw(st.booleans()):
            del tensors[key]
        else:
            tensors[key] = data.draw(tensor_values)
        write(path, meta, tensors)
        resume(interrupted[0], out)


@scaled(0.01)
@given(cut=st.floats(0, 1), at=st.floats(0, 1), junk=st.binary(min_size=1, max_size=16), which=st.booleans())
def test_cut_or_overwritten_resume_files(interrupted, cut, at, junk, which):
    with tempfile.TemporaryDirectory() as tmp:
        out = copy_state(interrupted, Path(tmp))
        path = state_dir_for(out) / (STATE_FILE if which else "settings.json")
        content = path.read_bytes()
        start = int(len(content) * at)
        damaged = content[: int(len(content) * cut)] if cut < 0.5 else content[:start] + junk + content[start + 16 :]
        path.write_bytes(damaged)
        resume(interrupted[0], out)
