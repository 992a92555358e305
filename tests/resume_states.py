"""A `--resume` state to damage: a tiny run killed in its second epoch, and the tools that copy, read and write
its safetensors file (test_resume_state.py edits it by hand, test_fuzz_runs.py with Hypothesis)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from convscope.cli import main
from convscope.training.checkpoint import state_dir_for
from convscope.training.loop import EpochLoop
from synthetic import tiny_run_args, write_tiny_run_inputs

STATE_FILE = "rank0-epoch0001.safetensors"


def train_args(folder: Path, out: Path, *extra: str) -> list[str]:
    # every kind of saved state: a one-cycle scheduler, EarlyStopping with its best weights, ReduceLROnPlateau
    settings = ("--patience", "2", "--monitor", "loss", "--reduce-lr-patience", "1", "--schedule", "one-cycle")
    return tiny_run_args(folder / "tiny.npz", folder / "small.yaml", out, *settings, "--threads", "1", *extra)


def make_interrupted(folder: Path) -> tuple[Path, Path]:
    """(folder, out): a run killed in its second epoch, so `.out.resume/` holds the state of epoch 1."""
    write_tiny_run_inputs(folder, n=96)
    out = folder / "run"
    original = EpochLoop.train_epoch
    calls = []

    def die_in_second_epoch(self, callbacks=None):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit(99)
        return original(self, callbacks)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EpochLoop, "train_epoch", die_in_second_epoch)
        with pytest.raises(SystemExit):
            main(train_args(folder, out))
    assert (state_dir_for(out) / STATE_FILE).is_file() and not out.exists()
    return folder, out


def copy_state(interrupted, tmp_path: Path) -> Path:
    """A fresh copy of the interrupted run's state for one case; returns the --out that resumes it."""
    folder, out = interrupted
    mine = tmp_path / "run"
    shutil.copytree(state_dir_for(out), state_dir_for(mine))
    return mine


def read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    with safe_open(str(path), framework="pt") as f:
        # safe_open's handle has keys() but cannot be iterated, so the rule that prefers `in f` does not apply
        return json.loads(f.metadata()["state"]), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def write(path: Path, meta: dict, tensors: dict[str, torch.Tensor], raw_meta: str | None = None) -> None:
    save_file(tensors, str(path), metadata={"state": raw_meta if raw_meta is not None else json.dumps(meta)})
