"""--resume after a real SIGKILL finishes bit-identical to the uninterrupted run; bad --resume cases exit 2;
config.json round-trips the settings; a Ctrl-C before the first epoch writes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file

import convscope as cs
import synthetic
from convscope.cli import main
from convscope.errors import UserError
from convscope.training.checkpoint import state_dir_for
from convscope.training.loop import EpochLoop
from convscope.training.settings import TrainSettings
from synthetic import SMALL_SPEC, tiny_dataset

# Blocks a run right after it saved the state of epoch KILL_AFTER, so the test can kill it there.
# At the top level, not under __main__: spawned DDP ranks re-import this file and get the patch too.
DRIVER = """
import os, sys, threading
from convscope.training import checkpoint

_save = checkpoint.CheckpointStore.save

def save(self, epoch, *args, **kwargs):
    _save(self, epoch, *args, **kwargs)
    if epoch == int(os.environ["KILL_AFTER"]):
        threading.Event().wait()  # hold here until the test kills the process group

checkpoint.CheckpointStore.save = save

if __name__ == "__main__":
    from convscope.cli import main
    sys.exit(main(sys.argv[1:]))
"""
EPOCHS, KILL_AFTER = 4, 2


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("resume")
    data = tiny_dataset(n=200)
    np.savez(folder / "tiny.npz", x=data.images[..., 0], y=data.labels)
    np.save(folder / "tiny.npy", data.images)
    np.save(folder / "tiny_labels.npy", data.labels)
    (folder / "small.yaml").write_text(yaml.safe_dump(SMALL_SPEC))
    (folder / "driver.py").write_text(DRIVER)
    return {
        "folder": folder,
        "npz": folder / "tiny.npz",
        "npy": folder / "tiny.npy",
        "spec": folder / "small.yaml",
        "driver": folder / "driver.py",
    }


def command(inputs, out: Path, extra: list[str]) -> list[str]:
    # patience 1 and a ReduceLROnPlateau: callback state matters after the kill; the fast
    # recipe's extras (one-cycle, label smoothing, random shift) run on every path
    return [
        "--data",
        str(inputs["npy" if "--stream" in extra else "npz"]),
        "--model",
        str(inputs["spec"]),
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        "16",
        "--patience",
        "1",
        "--monitor",
        "loss",
        "--reduce-lr-patience",
        "1",
        "--reduce-lr-factor",
        "0.5",
        "--schedule",
        "constant",
        "--label-smoothing",
        "0.1",
        "--random-shift",
        "1",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--no-report",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def run_cli(args: list[str], driver: Path | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, "KILL_AFTER": str(KILL_AFTER), "OMP_NUM_THREADS": "1"}
    head = [sys.executable, str(driver)] if driver else [sys.executable, "-m", "convscope", "train"]
    return subprocess.Popen(
        head + (["train"] if driver else []) + args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def kill_after_checkpoint(inputs, out: Path, extra: list[str], ranks: int) -> None:
    proc = run_cli(command(inputs, out, extra), driver=inputs["driver"], start_new_session=True)
    state = state_dir_for(out)
    wanted = [state / f"rank{r}-epoch{KILL_AFTER:04d}.safetensors" for r in range(ranks)]
    deadline = time.monotonic() + 600
    while not all(p.exists() for p in wanted):  # poll for the checkpoint files, never guess a time
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the launcher and every rank
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()


def finish(proc: subprocess.Popen) -> None:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr


def history_rows(run: Path) -> list[dict]:
    rows = cs.History.from_csv((run / "history.csv").read_text()).rows
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra,ranks",
    [([], 1), (["--stream"], 1), pytest.param(["--nproc", "2"], 2, marks=pytest.mark.ddp)],
    ids=["in-memory", "streamed", "ddp-2-ranks"],
)
def test_resume_after_sigkill_is_bit_identical(inputs, tmp_path, extra, ranks):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    uninterrupted = run_cli(command(inputs, whole, extra))  # runs while the other one is killed
    kill_after_checkpoint(inputs, resumed, extra, ranks)
    finish(run_cli(command(inputs, resumed, [*extra, "--resume"])))
    finish(uninterrupted)

    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert history_rows(whole) == history_rows(resumed)
    m_whole, m_resumed = (json.loads((r / "metrics.json").read_text()) for r in (whole, resumed))
    assert m_resumed["resumed_from_epoch"] == KILL_AFTER and m_whole["resumed_from_epoch"] is None
    for key in ("test_accuracy", "test_loss", "epochs_run", "best_epoch", "weights_epoch", "stopped_early"):
        assert m_whole[key] == m_resumed[key], key
    assert not state_dir_for(resumed).exists() and not state_dir_for(whole).exists()  # finished runs clean up


def tiny_run_args(inputs, out, *extra) -> list[str]:
    return synthetic.tiny_run_args(inputs["npz"], inputs["spec"], out, *extra)


def test_resume_without_saved_state_exits_2(inputs, tmp_path, capsys):
    assert main(tiny_run_args(inputs, tmp_path / "never", "--resume")) == 2
    err = capsys.readouterr().err
    assert "no saved state" in err and "never" in err and "Traceback" not in err


def test_resume_with_other_settings_exits_2_naming_them(inputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"

    calls = []

    def interrupt_second_epoch(self, callbacks=None):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit(99)  # dies mid-run: the state of epoch 1 stays behind
        return original(self, callbacks)

    original = EpochLoop.train_epoch
    monkeypatch.setattr(EpochLoop, "train_epoch", interrupt_second_epoch)
    with pytest.raises(SystemExit):
        main(tiny_run_args(inputs, out))
    monkeypatch.setattr(EpochLoop, "train_epoch", original)
    assert (state_dir_for(out) / "rank0-epoch0001.safetensors").is_file() and not out.exists()
    capsys.readouterr()

    assert main(tiny_run_args(inputs, out, "--resume", "--batch-size", "32", "--seed", "1")) == 2
    err = capsys.readouterr().err
    assert "batch_size=16 then, 32 now" in err and "seed=0 then, 1 now" in err
    other = inputs["folder"] / "other.npz"
    other.write_bytes(inputs["npz"].read_bytes())
    args = tiny_run_args(inputs, out, "--resume")
    args[args.index("--data") + 1] = str(other)
    assert main(args) == 2
    assert "data=" in capsys.readouterr().err
    assert main(tiny_run_args(inputs, out, "--resume")) == 0  # the same command continues it
    assert json.loads((out / "metrics.json").read_text())["resumed_from_epoch"] == 1
    assert main(tiny_run_args(inputs, out, "--resume")) == 2  # finished: nothing left to resume
    assert "already finished" in capsys.readouterr().err


def test_config_round_trip_retrains_the_same_run(inputs, tmp_path):
    first = cs.train(
        str(inputs["npz"]),
        str(inputs["spec"]),
        epochs=2,
        batch_size=16,
        lr=2e-3,
        seed=5,
        reduce_lr_patience=1,
        out=tmp_path / "first",
        verbose=False,
        report=False,
        device="cpu",
    )
    config = json.loads((first.path / "config.json").read_text())
    settings = TrainSettings.from_config(config)
    assert settings == TrainSettings(
        data=str(inputs["npz"]),
        model=str(inputs["spec"]),
        epochs=2,
        batch_size=16,
        lr=2e-3,
        seed=5,
        reduce_lr_patience=1,
        out=str(tmp_path / "first"),
        verbose=False,
        report=False,
        device="cpu",
    )
    assert main(["train", "--config", str(first.path / "config.json"), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "config.json").read_text())["settings"]
    assert {**again, "out": None} == {**config["settings"], "out": None}
    a, b = load_file(str(first.path / "model.safetensors")), load_file(str(tmp_path / "again" / "model.safetensors"))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_train_takes_the_cli_option_names(inputs, tmp_path):
    result = cs.train(
        str(inputs["npy"]),
        str(inputs["spec"]),
        stream=True,
        verbose=False,
        report=False,
        nproc=1,
        epochs=1,
        out=tmp_path / "run",
    )
    assert (result.path / "model.safetensors").is_file() and not (result.path / "report.html").exists()
    with pytest.raises(TypeError, match="log="):
        cs.train(str(inputs["npz"]), stream=sys.stdout)
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        cs.train(str(inputs["npz"]), epoch=3)


def test_save_run_from_python_names_the_data_and_the_model(tmp_path):
    data = tiny_dataset()
    model = cs.build(SMALL_SPEC, data.input_shape, data.num_classes, seed=0)
    trained = cs.fit(model, data, epochs=1, verbose=False)
    config = json.loads((cs.save_run(trained, tmp_path / "run") / "config.json").read_text())
    assert config["data"]["source"] == "tiny" and config["data"]["train_size"] == len(data)
    assert config["model"]["name"] == model.spec.name and config["fit"]["epochs"] == 1


def test_ctrl_c_before_the_first_epoch_writes_nothing(inputs, tmp_path, monkeypatch):
    def interrupted(self, callbacks=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(EpochLoop, "train_epoch", interrupted)
    with pytest.raises(UserError, match="before the first epoch completed"):
        cs.train(str(inputs["npz"]), str(inputs["spec"]), epochs=2, out=tmp_path / "run", verbose=False)
    assert list(tmp_path.iterdir()) == []  # no run, and no in-progress state with no epoch in it
