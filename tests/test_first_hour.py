"""What a newcomer meets between `make demo` and a first served model: start-up, mistyped commands, piped
output, Ctrl-C, readable objects in a plain REPL, and the progress bar's wording."""

from __future__ import annotations

import os
import pty
import re
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
        [sys.executable, "-m", "convscope", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=300,
        **kwargs,
    )


HEAVY = ("torch", "numpy", "matplotlib", "scipy", "PIL", "yaml", "optuna", "fastapi", "safetensors", "h5py")


@pytest.mark.slow
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


@pytest.mark.slow
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
    assert lines[2] == "convscope.data.load convscope.experiment convscope.training.fit convscope.evaluation.evaluate"


@pytest.mark.slow
@pytest.mark.parametrize(
    "first",
    ["", "import convscope.report.compare", "import convscope.experiment", "from convscope.report import compare"],
)
def test_functions_named_like_their_modules_stay_functions(first):
    """`cs.report` and `cs.experiment` are functions although convscope.report and convscope.experiment are
    modules too: importing the module (first, or later) must not replace the function."""
    probe = (
        f"{first}\nimport convscope as cs, types\n"
        "import convscope.report.compare, convscope.experiment, convscope.data.load, convscope.training.fit\n"
        "import convscope.data.describe, convscope.evaluation.evaluate, convscope.models.summary\n"
        "from convscope import data, evaluation, models, training\n"
        "values = [cs.report, cs.experiment, cs.load, cs.describe, cs.fit, data.load, data.describe,\n"
        "          cs.evaluate, models.summary, training.fit, cs.summary]\n"
        "print([type(v).__name__ for v in values])"
    )
    done = python(probe)
    assert done.stdout.split() == ["['function',"] + ["'function',"] * 9 + ["'function']"], done.stderr


# --- a closed stdout -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_piped_into_head_writes_its_run_and_says_so(tmp_path):
    """`convscope train … | head -3`: head leaves after three lines; training goes on and writes the run."""
    out = tmp_path / "run"
    train = subprocess.Popen(
        [sys.executable, "-m", "convscope", "train", "--data", "digits", "--model", "mlp", "--epochs", "2"]
        + ["--no-report", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert train.stdout is not None and train.stderr is not None
    head = [train.stdout.readline() for _ in range(3)]
    train.stdout.close()  # the reader goes away, as head does
    err = train.stderr.read().decode()
    assert train.wait(timeout=300) == 0, err
    assert head[0].startswith(b"source:")
    assert sorted(p.name for p in out.iterdir()) == [
        "architecture.json",
        "config.json",
        "history.csv",
        "metrics.json",
        "model.safetensors",
        "test_images.npy",
        "test_set.npz",
    ]
    assert err.strip() == (
        f"convscope train: the reader of the output went away; training went on quietly and wrote the run to {out}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("args", [["summary", "--json", "cnn"], ["datasets"]])
def test_any_command_piped_into_a_closed_reader_finishes_with_one_line(args):
    read, write = os.pipe()
    os.close(read)  # nobody will ever read: the first write finds the pipe closed
    done = subprocess.run(
        [sys.executable, "-m", "convscope", *args],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        timeout=300,
    )
    os.close(write)
    assert done.returncode == 0
    assert done.stderr.strip() == (
        f"convscope {args[0]}: the reader of the output went away; the command finished without printing the rest."
    )


@pytest.mark.slow
def test_help_into_a_closed_reader_is_quiet():
    read, write = os.pipe()
    os.close(read)
    done = subprocess.run(
        [sys.executable, "-m", "convscope", "train", "--help"], stdout=write, stderr=subprocess.PIPE, text=True,
        env=ENV, timeout=300,
    )  # fmt: skip
    os.close(write)
    assert (done.returncode, done.stderr) == (0, "")


# --- mistyped commands and flags ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "usage", "hint"),
    [
        (["trian"], "usage: convscope [-h]", "(did you mean train?)"),
        (["train", "--epohcs", "2"], "usage: convscope train [-h]", "arguments: --epohcs 2 (did you mean --epochs?)"),
        (
            ["train", "--epoch", "2"],
            "usage: convscope train [-h]",
            "unrecognized arguments: --epoch 2 (did you mean --epochs?)",
        ),
        (["inspect", "runs/x", "--mistake"], "usage: convscope inspect [-h]", "(did you mean --mistakes?)"),
        (["train", "--monitor", "val_los"], "usage: convscope train [-h]", "(did you mean val_loss?)"),
        (["train", "--nonsense"], "usage: convscope train [-h]", "unrecognized arguments: --nonsense\n"),
    ],
)
def test_mistyped_input_gets_the_commands_usage_and_a_suggestion(args, usage, hint):
    done = convscope(*args)
    assert done.returncode == 2
    assert done.stderr.startswith(usage)
    assert hint in done.stderr + "\n"
    assert "Traceback" not in done.stderr


def test_no_parser_takes_abbreviations():
    from convscope.cli import parser

    root = parser()
    commands = next(a for a in root._actions if a.dest == "command").choices
    assert root.allow_abbrev is False
    assert all(sub.allow_abbrev is False for sub in commands.values())


# --- Ctrl-C ----------------------------------------------------------------------------------------------

CTRL_C_AT = """
import sys
from convscope.cli import main
from convscope.training import loop

calls = []
real = loop.EpochLoop.train_epoch


def train_epoch(self, hooks):
    calls.append(1)
    if len(calls) == {at}:
        raise KeyboardInterrupt  # what Ctrl-C raises in the middle of that epoch
    return real(self, hooks)


loop.EpochLoop.train_epoch = train_epoch
sys.exit(main(["train", "--data", "digits", "--model", "mlp", "--epochs", "5", "--patience", "5", "--no-report",
               "--out", {out!r}]))
"""


@pytest.mark.slow
def test_ctrl_c_before_the_first_epoch_says_nothing_is_kept(tmp_path):
    done = python(CTRL_C_AT.format(at=1, out=str(tmp_path / "run")))
    assert done.returncode == 130, done.stderr
    assert "Interrupted before the first epoch ended: there are no trained weights to keep." in done.stdout
    assert "best weights" not in done.stdout and "stopping cleanly" not in done.stdout
    assert done.stderr.strip() == (
        "convscope train: interrupted before the first epoch completed: nothing to save, so no run was written."
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ctrl_c_in_a_later_epoch_names_the_weights_kept_and_writes_the_run(tmp_path):
    done = python(CTRL_C_AT.format(at=4, out=str(tmp_path / "run")))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("Interrupted")]
    assert len(lines) == 1
    assert lines[0].startswith("Interrupted in epoch 4: training stops with the weights of epoch ")
    assert lines[0].endswith(", the best so far.")
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.slow
def test_ctrl_c_while_loading_is_one_sentence(tmp_path):
    probe = (
        "import sys\nfrom convscope.cli import main\nimport convscope.workflow as w\n"
        "def load(*a, **k):\n    raise KeyboardInterrupt\nw.load = load\n"
        f"sys.exit(main(['train', '--data', 'digits', '--out', {str(tmp_path / 'run')!r}]))"
    )
    done = python(probe)
    assert done.returncode == 130
    assert done.stderr == "convscope train: interrupted.\n"


# --- the progress bar ------------------------------------------------------------------------------------

EPOCH_END = re.compile(r"^ *(\d+)/\1 \[=+\] \d+\.\ds \d+(s|ms|us)/step - loss: \d\.\d{4} - accuracy: ")


@pytest.mark.slow
def test_a_terminal_sees_eta_during_an_epoch_and_time_per_step_at_its_end(tmp_path):
    """On a terminal (a pty here) the live bar shows Keras' `ETA: 3s`; every epoch closes with `ms/step`."""
    main, side = pty.openpty()
    train = subprocess.Popen(
        [sys.executable, "-m", "convscope", "train", "--data", "digits", "--model", "mlp", "--epochs", "2"]
        + ["--batch-size", "8", "--no-report", "--out", str(tmp_path / "run")],
        stdout=side,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    os.close(side)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert train.wait(timeout=300) == 0
    text = seen.decode()
    live = [part for part in text.replace("\r\n", "\n").split("\r") if "ETA: " in part]
    assert live, text
    assert all(re.search(r"\] - ETA: (\d+s|\d+:\d\d) - loss: \d\.\d{4} - accuracy: \d\.\d{4}", part) for part in live)
    closing = [line for line in re.split(r"[\r\n]+", text) if EPOCH_END.match(line)]
    assert len(closing) == 2, text


@pytest.mark.slow
def test_piped_output_closes_each_epoch_with_time_per_step(tmp_path):
    done = convscope(
        "train", "--data", "digits", "--model", "mlp", "--epochs", "2", "--no-report", "--out", str(tmp_path / "r")
    )
    assert done.returncode == 0, done.stderr
    assert "ETA" not in done.stdout and "\r" not in done.stdout
    assert len([line for line in done.stdout.splitlines() if EPOCH_END.match(line)]) == 2


@pytest.mark.parametrize(
    ("seconds", "eta", "pace"),
    [(0.4, "0s", "400ms/step"), (7.4, "7s", "7s/step"), (65, "1:05", "65s/step"), (3725, "1:02:05", "3725s/step")],
)
def test_eta_and_step_time_are_written_as_keras_writes_them(seconds, eta, pace):
    from convscope.training.progress import eta_text, step_time_text

    assert eta_text(seconds) == eta and step_time_text(seconds) == pace
    assert step_time_text(0.00048) == "480us/step"


BATCHNORM_SPEC = """name: bn
layers:
  - Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}
  - BatchNormalization: {}
  - Flatten: {}
  - Dense: {units: num_classes, activation: softmax}
"""


@pytest.mark.slow
def test_young_batchnorm_statistics_are_explained_while_training(tmp_path):
    """Large batches: 9 steps per epoch leave 0.99^18 = 83% of BatchNorm's initial statistics after epoch 2, so
    validation trails training by far; the line comes right after that epoch, once, before training ends."""
    spec = tmp_path / "bn.yaml"
    spec.write_text(BATCHNORM_SPEC)
    done = convscope(
        "train", "--data", "digits", "--model", str(spec), "--epochs", "3", "--batch-size", "128", "--lr", "0.01",
        "--no-report", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    notes = [i for i, line in enumerate(lines) if line.startswith("note: validation accuracy lags")]
    assert len(notes) == 1, done.stdout
    assert notes[0] < lines.index("Epoch 3/3")
    assert (
        "BatchNormalization's moving statistics are young (83% of their initial values left after 18 steps"
        in (lines[notes[0]])
    )


@pytest.mark.slow
def test_a_model_without_batchnorm_gets_no_such_line(tmp_path):
    spec = tmp_path / "plain.yaml"
    spec.write_text(BATCHNORM_SPEC.replace("  - BatchNormalization: {}\n", ""))
    done = convscope(
        "train", "--data", "digits", "--model", str(spec), "--epochs", "3", "--batch-size", "128", "--lr", "0.01",
        "--no-report", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Epoch 3/3" in done.stdout and "note: validation accuracy lags" not in done.stdout


# --- a plain Python REPL ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_plain_repl_shows_each_object_in_one_short_line(tmp_path):
    """What `python` echoes for the README's objects: one line each, with the facts, never the arrays."""
    session = f"""
import convscope as cs
data = cs.load("digits")
data
print(data)
done = cs.train("digits", "mlp", epochs=1, out={str(tmp_path / "run")!r}, verbose=False, report=False)
done
run = cs.load_run({str(tmp_path / "run")!r})
run
run.history
result = cs.evaluate(run, cs.load_test_set({str(tmp_path / "run")!r})[0])
result
cs.summary("cnn", print_fn=None)
"""
    repl = subprocess.run(
        [sys.executable, "-q", "-i"], input=session, capture_output=True, text=True, env=ENV, timeout=300
    )
    lines = repl.stdout.splitlines()
    assert len(lines) == 7, repl.stdout + repl.stderr
    assert all(len(line) < 250 for line in lines)
    data_line = "<Dataset digits: 1,797 images 8x8x1 uint8 in [0, 16], 10 classes (0, 1, 2, 3, 4, ... 9)>"
    assert lines[0] == lines[1] == data_line
    assert re.fullmatch(
        rf"<TrainResult {tmp_path / 'run'}: test accuracy 0\.\d{{4}}; the model is \.trained, the test \.evaluation>",
        lines[2],
    )
    assert lines[3].startswith("<TrainedModel mlp on 8x8x1 images, 10 classes (0, 1, 2, 3, 4, ... 9), 1 epoch, ")
    assert lines[3].endswith(f"(epoch 1), in {tmp_path / 'run'}>")
    assert lines[4] == "<History: 1 epoch, best epoch 1>"
    assert re.fullmatch(
        r"<EvaluationResult: accuracy 0\.\d{4}, loss \d+\.\d{4} on 359 images, 10 classes, \d+ mistakes>", lines[5]
    )
    assert lines[6] == "<ModelSummary cnn: 12 layers, 44,010 params, input 28x28x1, 22,206,016 FLOPs per image>"


# --- import --scale on a model that scales itself -----------------------------------------------------------


@pytest.fixture(scope="module")
def rescaling_model(tmp_path_factory) -> Path:
    """A Keras file that starts with a Rescaling layer: convscope's own export of a small run."""
    import convscope as cs

    folder = tmp_path_factory.mktemp("rescaling")
    cs.train("digits", "mlp", epochs=1, out=folder / "run", verbose=False, report=False)
    done = convscope("export", str(folder / "run"), "--format", "keras", "--out", str(folder / "model.keras"))
    assert done.returncode == 0, done.stderr
    return folder / "model.keras"


@pytest.mark.slow
def test_import_refuses_to_scale_a_rescaling_model_twice(rescaling_model, tmp_path):
    done = convscope("import", str(rescaling_model), "--out", str(tmp_path / "twice"), "--scale", "0,16")
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"convscope import: error: {rescaling_model}: the model starts with a Rescaling layer ("
    )
    assert "so --scale 0,16 would scale its inputs twice; leave --scale out" in done.stderr
    assert "--double-scale" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "twice").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "scaling"),
    [([], "scaling: (x - 0) / (1 - 0)"), (["--scale", "none"], "scaling: (x - 0) / (1 - 0)"),
     (["--scale", "0,16", "--double-scale"], "scaling: (x - 0) / (16 - 0)")],
)  # fmt: skip
def test_import_of_a_rescaling_model_without_scale_or_with_double_scale(rescaling_model, tmp_path, flags, scaling):
    done = convscope("import", str(rescaling_model), "--out", str(tmp_path / "run"), *flags)
    assert done.returncode == 0, done.stderr
    assert scaling in done.stdout


# --- smaller mismatches ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_summary_sizes_read_as_keras_writes_them():
    done = convscope("summary", "mlp")
    assert "Total params: 271,370 (1.04 MB)\n" in done.stdout
    assert "Trainable params: 270,346 (1.03 MB)\n" in done.stdout
    assert "Non-trainable params: 1,024 (4.00 KB)\n" in done.stdout


def test_memory_sizes_step_by_1024():
    from convscope.models.summary import memory_size

    assert [memory_size(n) for n in (0, 1023, 1024, 1_085_480, 3 * 2**30)] == [
        "0.00 B", "1023.00 B", "1.00 KB", "1.04 MB", "3.00 GB",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def small_cnn_run(tmp_path_factory) -> Path:
    import convscope as cs

    out = tmp_path_factory.mktemp("cnn") / "run"
    spec = {"name": "tiny-cnn", "layers": [
        {"Conv2D": {"filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"Flatten": {}}, {"Dense": {"units": "num_classes", "activation": "softmax"}}]}  # fmt: skip
    cs.train("digits", spec, epochs=1, out=out, verbose=False, report=False)
    return out


@pytest.mark.slow
def test_exported_keras_and_onnx_files_follow_the_umask(small_cnn_run, tmp_path):
    modes = {}
    for fmt, name in (("keras", "model.keras"), ("torchscript", "model.pt")):
        done = subprocess.run(
            [sys.executable, "-m", "convscope", "export", str(small_cnn_run), "--format", fmt]
            + ["--out", str(tmp_path / name)],
            capture_output=True, text=True, env=ENV, timeout=300, umask=0o027,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        modes[name] = (tmp_path / name).stat().st_mode & 0o777
    assert modes == {"model.keras": 0o640, "model.pt": 0o640}


def test_save_run_from_python_speaks_of_python_not_flags(small_cnn_run):
    import convscope as cs
    from convscope.errors import UserError

    trained = cs.load_run(small_cnn_run)
    with pytest.raises(UserError) as refused:
        cs.save_run(trained, small_cnn_run)
    assert "--out" not in str(refused.value)
    assert str(refused.value) == (
        f"run directory {small_cnn_run} already exists, and a run is never overwritten; save it under a new name."
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("color", "caption"),
    [("always", "red and yellow are where the evidence lies"), ("never", "the brighter, the more evidence")],
)
def test_the_grad_cam_caption_describes_what_is_drawn(small_cnn_run, color, caption):
    done = convscope("inspect", str(small_cnn_run), "--index", "0", "--feature-maps", "--color", color)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("Grad-CAM on ")]
    assert len(lines) == 1 and lines[0].endswith(caption), lines
    assert ("red and yellow" in lines[0]) == (color == "always")


@pytest.mark.slow
def test_top_losses_help_says_how_they_are_ordered():
    text = " ".join(convscope("inspect", "--help").stdout.split())
    assert (
        "the N misclassified images with the highest loss, highest first (the lowest probability on the true class)"
        in text
    )
    assert "confidently" not in text
