"""Fuzzing the CLI's numeric flags, in process: every flag of every command that takes a number
refuses NaN, infinities, negative and out-of-range values in argparse (exit 2, one line), and what
it accepts is a value the settings behind it accept too."""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import time
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import convscope as cs
from convscope import cli
from convscope.experiment import check_grid, plan
from convscope.settings_table import check_settings
from fuzzing import scaled, valid_or_user_error

# A value for each positional argument, so that only the flag under test can fail.
POSITIONALS = {"run_dir": "RUN", "images": "image.png", "model": "cnn", "run_dirs": "RUN"}


def numeric_flags() -> list[tuple[str, str, argparse.Action]]:
    """(command, flag, action) for every option whose type parses text into something other than text."""
    root = cli.parser()
    commands = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction)).choices
    found = []
    for name, sub in commands.items():
        for action in sub._actions:
            # --grid takes NAME=A,B pairs, not numbers: its own property is below
            if action.option_strings and action.type not in (None, str) and action.dest != "grid":
                found.append((name, action.option_strings[-1], action))
    return found


FLAGS = numeric_flags()
texts = st.one_of(
    st.sampled_from(
        [
            "nan",
            "NaN",
            "inf",
            "-inf",
            "-1",
            "0",
            "1",
            "-0",
            "1e308",
            "1e-320",
            "99999",
            "2**62",
            str(2**64),
            "1,2",
            "0,1e9",
            "fixed",
            "",
            " ",
            "3.5",
            "1e3",
            "0x10",
            "１",
        ]
    ),
    st.floats().map(repr),
    st.integers().map(str),
    st.text(max_size=12),
)


def parse(argv: list[str]) -> tuple[int | None, argparse.Namespace | None, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return None, cli.parser().parse_args(argv), err.getvalue()
        except SystemExit as exit:
            return exit.code, None, err.getvalue()


def argv_for(command: str, flag: str, text: str) -> list[str]:
    sub = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    positionals = [POSITIONALS[a.dest] for a in sub._actions if not a.option_strings and a.dest in POSITIONALS]
    return [command, *positionals, f"{flag}={text}"]


def finite_values(value) -> list[float]:
    items = value if isinstance(value, tuple) else (value,)
    return [float(v) for v in items if v is not None]


@scaled(0.3)
@given(
    name=st.sampled_from(["filters", "dropout", "units", "kernel_size", "lr", "batch_size", "epochs"]) | texts,
    values=texts,
)
@example(name="filters", values="4.7")
@example(name="lr", values="0.001,100")
@example(name="0", values="0")
def test_grid_is_refused_in_one_sentence_or_planned(name, values):
    """`sweep --grid NAME=A,B`: argparse refuses it, or every combination is checked (settings and network
    shapes) before the first run trains, as a plan or one UserError sentence."""
    code, args, err = parse(["sweep", "--grid", f"{name}={values}"])
    if code is not None:
        assert code == 2 and err.strip().splitlines()[-1].startswith("convscope sweep: error: argument --grid"), err
        return

    def planned():
        return plan(check_grid(dict(args.grid)), "cnn", 0, 2, 0.2, 3, {}, (28, 28, 1), 10)

    valid_or_user_error(planned)


def test_every_numeric_flag_is_covered():
    names = {(c, f) for c, f, _ in FLAGS}
    for expected in [
        ("train", "--lr"),
        ("train", "--seed"),
        ("train", "--min-delta"),
        ("train", "--random-shift"),
        ("predict", "--top"),
        ("serve", "--port"),
        ("serve", "--max-upload-mb"),
        ("sweep", "--timeout"),
        ("inspect", "--index"),
        ("summary", "--input-shape"),
    ]:
        assert expected in names


@pytest.mark.parametrize("command, flag", [(c, f) for c, f, _ in FLAGS])
@scaled(0.1)
@given(text=texts)
@example(text="nan")
@example(text="inf")
@example(text="-1")
def test_numeric_flags_refuse_or_hold_a_usable_value(command, flag, text):
    code, args, err = parse(argv_for(command, flag, text))
    if code is not None:
        assert code == 2
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"convscope {command}: error: argument {flag}") and len(last) < 300
        return
    dest = next(a.dest for c, f, a in FLAGS if (c, f) == (command, flag))
    value = getattr(args, dest)
    for number in finite_values(value):
        assert math.isfinite(number) and number >= 0, (flag, text, value)
    if command == "train" and dest in {
        "epochs",
        "batch_size",
        "lr",
        "patience",
        "min_delta",
        "validation_split",
        "test_split",
        "seed",
        "label_smoothing",
        "random_shift",
    }:
        check_settings({dest: value})  # what argparse accepts, the API accepts


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--lr", "nan"], "argument --lr: must be a finite number in (0, 10], got 'nan'"),
        (["train", "--lr", "inf"], "argument --lr: must be a finite number in (0, 10], got 'inf'"),
        (["train", "--seed", "-1"], "argument --seed: must be a seed from 0 to 4,294,967,295, got '-1'"),
        (["train", "--min-delta", "nan"], "argument --min-delta: must be a finite number >= 0, got 'nan'"),
        (
            ["predict", "RUN", "x.png", "--top", "0"],
            "argument --top: must be a positive integer from 1 to 1,000,000, got '0'",
        ),
        (["serve", "RUN", "--port", "99999"], "argument --port: must be a TCP port from 0 to 65,535, got '99999'"),
        (
            ["serve", "RUN", "--max-upload-mb", "nan"],
            "argument --max-upload-mb: must be a finite number in (0, 1,048,576], got 'nan'",
        ),
    ],
)
def test_the_reported_flags(argv, message):
    code, _, err = parse(argv)
    assert code == 2 and err.strip().splitlines()[-1].endswith(message)


@pytest.mark.parametrize(
    "setting",
    [
        {"lr": float("nan")},
        {"lr": float("inf")},
        {"seed": -1},
        {"min_delta": float("nan")},
        {"epochs": 0},
        {"test_split": 1.0},
        {"random_shift": -2},
        {"batch_size": 2.5},
    ],
)
def test_the_api_refuses_what_the_flags_refuse(tmp_path, setting):
    with pytest.raises(cs.UserError):
        cs.train("digits", "mlp", out=tmp_path / "run", verbose=False, **setting)
    assert not (tmp_path / "run").exists()


def test_random_shift_larger_than_half_the_image_is_refused_before_training(tmp_path):
    with pytest.raises(cs.UserError, match=r"random_shift 1000 pixels is too large for 8x8 images; .* at most 3\."):
        cs.train("digits", "mlp", out=tmp_path / "run", verbose=False, random_shift=1000)


# --- --out is checked before any data is read --------------------------------------------------


def _read_only_parent(tmp_path: Path) -> Path:
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    if os.geteuid() == 0:  # root writes through permission bits; a read-only mount stops it
        parent = Path("/sys")
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(parent, os.path.basename(__import__("tempfile").mkdtemp(dir=parent))))
            pytest.skip("no read-only folder available to root here")
    return parent


@pytest.mark.parametrize("case", ["exists", "under a file", "read-only", "dangling link"])
def test_out_is_checked_before_any_data_is_loaded(tmp_path, case, capsys):
    if case == "exists":
        out = tmp_path / "run"
        out.mkdir()
        expected = f"--out {out} already exists (a directory); choose a new directory."
    elif case == "under a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
        expected = f"--out {out} lies under {tmp_path / 'file'}, which is a file, not a directory."
    elif case == "read-only":
        out = _read_only_parent(tmp_path) / "sub" / "run"
        expected = f"--out {out}: the folder {out.parent.parent} cannot be written to"
    else:
        out = tmp_path / "link"
        out.symlink_to(tmp_path / "nowhere")
        expected = f"--out {out} already exists (a dangling symbolic link); choose a new path."
    started = time.monotonic()
    # a data path that does not exist: reaching the loader would give a different message
    code = cli.main(["train", "--data", str(tmp_path / "absent.npz"), "--out", str(out), "--quiet"])
    assert code == 2 and time.monotonic() - started < 5
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"convscope train: error: {expected}") and "\n" not in err


# --- commands that run, with fuzzed numbers -----------------------------------------------------


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("fuzz-cli-picture") / "digit.png"
    Image.new("L", (8, 8), 30).save(path)
    return path


@scaled(0.05)
@given(top=st.integers(1, 10**6))
@example(top=1)
@example(top=10**6)
def test_predict_top_any_accepted_value(mlp_run, picture, top):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["predict", str(mlp_run), str(picture), "--top", str(top)]) == 0
    assert out.getvalue().count(",") == min(top, 10) - 1


@scaled(0.1)
@given(
    shape=st.tuples(st.integers(1, 10**6), st.integers(1, 10**6), st.integers(1, 10**6)),
    classes=st.integers(1, 10**6),
    model=st.sampled_from(["mlp", "cnn", "cnn-wide", "fast"]),
)
@example((100_000, 100_000, 1), 10, "cnn")
def test_summary_of_any_accepted_shape_answers_quickly(shape, classes, model):
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = valid_or_user_error(
            cli.main,
            ["summary", model, "--input-shape", ",".join(map(str, shape)), "--classes", str(classes), "--json"],
        )
    assert code in (0, 2) and time.monotonic() - started < 20


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "{run}", "--format", "torchscript", "--out", "{file}/m.pt"],
        ["compare", "{run}", "--save", "{file}/dir"],
        ["inspect", "{run}", "--no-images", "--save", "{file}/dir"],
    ],
)
def test_other_outputs_are_checked_before_work(mlp_run, tmp_path, argv, capsys):
    (tmp_path / "file").write_text("x")
    argv = [a.format(run=mlp_run, file=tmp_path / "file") for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"lies under {tmp_path / 'file'}, which is a file, not a directory.") and "\n" not in err
