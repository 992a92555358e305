"""A `convscope train` killed with SIGKILL at a point of the test's choosing, rerun with `--resume`,
ends byte for byte like the run that was never killed: weights, every history.csv column but the
wall-clock `seconds`, test metrics. The course `cnn` (BatchNorm, Dropout) and the `fast` recipe
(one-cycle, label smoothing, random shift, bf16 where the CPU has it), with --threads 1 and 2, in
memory, streamed and on 2 ranks. `kill_points.py` does the killing (no timing anywhere)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import convscope as cs
from convscope.data import load
from convscope.training.checkpoint import CheckpointStore, identity_caveats, state_dir_for

DRIVER = Path(__file__).with_name("kill_points.py")
EPOCHS = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """300 real digits (every class), as .npz for memory and as .npy for --stream."""
    folder = tmp_path_factory.mktemp("kills")
    digits = load("mnist-5k")
    pick = np.arange(0, len(digits), len(digits) // 300)[:300]
    images, labels = digits.images[pick], digits.labels[pick]
    np.savez(folder / "digits.npz", x=images[..., 0], y=labels)
    np.save(folder / "digits.npy", images)
    np.save(folder / "digits_labels.npy", labels)
    return {"npz": folder / "digits.npz", "npy": folder / "digits.npy"}


SETUPS = {
    # the course's workflow: EarlyStopping restoring the best weights, validation split, Adam, cnn
    "cnn": ["--model", "cnn", "--patience", "1", "--monitor", "loss"],
    "fast": ["--model", "cnn", "--recipe", "fast", "--batch-size", "32"],
}


def args(data, out: Path, setup: str, threads: int, extra: list[str]) -> list[str]:
    source = data["npy"] if "--stream" in extra else data["npz"]
    return [
        "train",
        "--data",
        str(source),
        *SETUPS[setup],
        "--epochs",
        str(EPOCHS),
        "--seed",
        "0",
        "--device",
        "cpu",
        "--threads",
        str(threads),
        "--no-report",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def run(argv: list[str], kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KILL_AT"}
    if kill_at:
        env["KILL_AT"] = kill_at
    done = subprocess.run(
        [sys.executable, str(DRIVER), *argv],
        env=env,
        capture_output=True,
        text=True,
        start_new_session=True,  # the driver kills its process group: this run's processes only
        timeout=600,
    )
    if kill_at:
        assert done.returncode != 0 and "Traceback" not in done.stderr.replace("ProcessExitedException", ""), (
            done.stderr
        )
    else:
        assert done.returncode == 0, done.stderr
    return done


_uninterrupted: dict[tuple, Path] = {}


def uninterrupted(data, tmp_path_factory, setup: str, threads: int, extra: list[str]) -> Path:
    """The never-killed run of a configuration, trained once per module."""
    key = (setup, threads, *extra)
    if key not in _uninterrupted:
        out = tmp_path_factory.mktemp("whole") / "run"
        run(args(data, out, setup, threads, extra))
        _uninterrupted[key] = out
    return _uninterrupted[key]


def history_without_seconds(run_dir: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO((run_dir / "history.csv").read_text())))
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def assert_identical(whole: Path, resumed: Path) -> None:
    assert (whole / "model.safetensors").read_bytes() == (resumed / "model.safetensors").read_bytes()
    assert history_without_seconds(whole) == history_without_seconds(resumed)
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (whole, resumed))
    for key in ("test_loss", "test_accuracy", "epochs_run", "best_epoch", "weights_epoch", "confusion_matrix"):
        assert a[key] == b[key], key


CASES = {
    # id: (setup, --threads, more flags, KILL_AT, the epoch the resume continues after)
    "cnn-t1-before-first-checkpoint": ("cnn", 1, [], "step:1:2", 0),
    "cnn-t1-mid-epoch": ("cnn", 1, [], "step:2:3", 1),
    "cnn-t1-validation": ("cnn", 1, [], "validate:2", 1),
    "cnn-t1-checkpoint-write": ("cnn", 1, [], "writing:2", 1),
    "cnn-t2-mid-epoch": ("cnn", 2, [], "step:3:2", 2),
    "fast-t1-mid-epoch": ("fast", 1, [], "step:2:3", 1),
    "fast-t2-stream-validation": ("fast", 2, ["--stream"], "validate:3", 2),
    "cnn-t1-2-ranks-mid-epoch": ("cnn", 1, ["--nproc", "2"], "step:2:3", 1),
}


# The cases with --nproc start a process group of their own.
PARAMS = [pytest.param(*case, marks=pytest.mark.ddp) if "--nproc" in case[2] else case for case in CASES.values()]


@pytest.mark.slow
@pytest.mark.parametrize("setup,threads,extra,kill_at,resumed_from", PARAMS, ids=list(CASES))
def test_killed_then_resumed_ends_identical(
    data, tmp_path, tmp_path_factory, setup, threads, extra, kill_at, resumed_from
):
    whole = uninterrupted(data, tmp_path_factory, setup, threads, extra)
    out = tmp_path / "run"
    run(args(data, out, setup, threads, extra), kill_at=kill_at)
    assert not out.exists() and state_dir_for(out).is_dir()
    run(args(data, out, setup, threads, [*extra, "--resume"]))
    assert_identical(whole, out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == resumed_from
    assert metrics["resume"]["epoch"] == resumed_from
    if resumed_from:  # a resume with no saved epoch starts afresh and sets no generator
        assert set(metrics["resume"]["generators"]) >= {"torch", "shuffler"}
    assert metrics["resume"]["identical"] is True
    assert not state_dir_for(out).exists()


@pytest.mark.slow
def test_killed_resumed_killed_again_resumed_ends_identical(data, tmp_path, tmp_path_factory):
    whole = uninterrupted(data, tmp_path_factory, "cnn", 1, [])
    out = tmp_path / "run"
    first = run(args(data, out, "cnn", 1, []), kill_at="saved:1")  # right after a checkpoint
    assert first.returncode == -signal.SIGKILL
    assert [p.name for p in state_dir_for(out).glob("rank*")] == ["rank0-epoch0001.safetensors"]
    run(args(data, out, "cnn", 1, ["--resume"]), kill_at="step:3:1")
    run(args(data, out, "cnn", 1, ["--resume"]))
    assert_identical(whole, out)
    assert json.loads((out / "metrics.json").read_text())["resumed_from_epoch"] == 2


@pytest.mark.slow
def test_resume_with_other_threads_says_it_cannot_promise_identity(data, tmp_path):
    out = tmp_path / "run"
    run(args(data, out, "cnn", 1, []), kill_at="saved:1")
    done = run([a for a in args(data, out, "cnn", 2, ["--resume"]) if a != "--quiet"])
    resume = json.loads((out / "metrics.json").read_text())["resume"]
    assert resume["identical"] is False and resume["epoch"] == 1
    assert resume["because"] == [
        "the killed run trained with --threads 1 and this one with --threads 2; "
        "another thread count rounds floats differently."
    ]
    assert "not bit-identical to a run never interrupted: the killed run trained with --threads 1" in done.stdout
    # said when training resumes, before its first epoch, not after the run
    assert done.stdout.index("resumed after epoch 1\n") < done.stdout.index(f"Epoch 2/{EPOCHS}")


@pytest.mark.slow
def test_resumed_fit_in_process_matches_and_moments_keep_the_channels_last_layout(tmp_path):
    """cs.fit for 2 epochs against 1 epoch + resume: same weights; Adam's moments laid out like the kernels."""
    digits = load("mnist-5k").subset(np.arange(0, 5000, 40))
    settings = {"epochs": 2, "batch_size": 32, "verbose": False, "threads": 1, "device": "cpu"}
    whole = cs.fit(cs.build("cnn", digits.input_shape, digits.num_classes, seed=0), digits, **settings)
    store = CheckpointStore(tmp_path / "state")
    cs.fit(cs.build("cnn", digits.input_shape, digits.num_classes, seed=0), digits, **settings, checkpoint=store)
    (tmp_path / "state" / "rank0-epoch0002.safetensors").unlink()  # as if killed during epoch 2
    model = cs.build("cnn", digits.input_shape, digits.num_classes, seed=0)
    seen = []
    original = CheckpointStore.restore

    def restore(self, state):
        restored = original(self, state)
        optimizer = state.optimizer
        seen.extend((p.stride(), s["exp_avg"].stride()) for p, s in optimizer.state.items())
        return restored

    CheckpointStore.restore = restore  # type: ignore[method-assign]
    try:
        resumed = cs.fit(model, digits, **settings, checkpoint=store, resume=True)
    finally:
        CheckpointStore.restore = original  # type: ignore[method-assign]
    assert seen and all(param == moment for param, moment in seen)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history.resume == {"epoch": 1, "generators": ["torch", "shuffler"], "identical": True, "because": []}


def test_identity_caveats_name_the_cause():
    assert identity_caveats(2, 2, "cpu", "cpu") == []
    assert "no --threads" in identity_caveats(None, 2, "cpu", "cpu")[0]
    assert identity_caveats(1, 2, "cpu", "cpu") == [
        "the killed run trained with --threads 1 and this one with --threads 2; "
        "another thread count rounds floats differently."
    ]
    assert any("cuda" in cause for cause in identity_caveats(1, 1, "cuda", "cuda"))
