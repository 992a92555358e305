"""`python tests/kill_points.py train ...`: `convscope` that SIGKILLs itself at a point the test names.

KILL_AT=PHASE:EPOCH[:STEP] (EPOCH 1-based, as the progress shows it):
  step:E:S     just before optimizer step S (0-based) of epoch E: in the middle of an epoch
  validate:E   when the validation of epoch E begins: its training pass is done, its state not yet saved
  saved:E      right after the state of epoch E is on disk
  writing:E    while the state of epoch E is written: half of its temporary file is on disk

The kill goes to the whole process group, as a user's kill of a `--nproc` run reaches the launcher and
every rank; run it with `start_new_session=True`. The patches are at the top level, not under
__main__: spawned DDP ranks re-import this file and get them too. Only rank 0 kills.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

from convscope.training import checkpoint
from convscope.training.callbacks import CallbackList
from convscope.training.loop import EpochLoop

PHASE, _, WHERE = os.environ.get("KILL_AT", "none:0").partition(":")
EPOCH, _, STEP = WHERE.partition(":")
KILL_EPOCH, KILL_STEP = int(EPOCH or 0), int(STEP or 0)
now = {"epoch": 0, "step": 0}  # the epoch (1-based) and optimizer step this process is at


def die() -> None:
    if os.environ.get("RANK", "0") == "0":
        os.killpg(os.getpgid(0), signal.SIGKILL)


def at(phase: str, epoch: int) -> bool:
    return phase == PHASE and epoch == KILL_EPOCH


_epoch_begin = CallbackList.on_epoch_begin


def on_epoch_begin(self, epoch, logs=None):
    now.update(epoch=epoch + 1, step=0)
    return _epoch_begin(self, epoch, logs)


_step = torch.optim.Adam.step


def step(self, *args, **kwargs):
    if at("step", now["epoch"]) and now["step"] == KILL_STEP:
        die()
    now["step"] += 1
    return _step(self, *args, **kwargs)


_validate = EpochLoop.validate


def validate(self, *args, **kwargs):
    if at("validate", now["epoch"]):
        die()
    return _validate(self, *args, **kwargs)


_save = checkpoint.CheckpointStore.save


def save(self, epoch, *args, **kwargs):
    _save(self, epoch, *args, **kwargs)
    if at("saved", epoch):
        die()


_save_file = checkpoint.save_file


def save_file(tensors, filename, metadata=None):
    _save_file(tensors, filename, metadata=metadata)
    if at("writing", now["epoch"]):
        path = Path(filename)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        die()


CallbackList.on_epoch_begin = on_epoch_begin  # type: ignore[method-assign]
torch.optim.Adam.step = step  # type: ignore[method-assign]
EpochLoop.validate = validate  # type: ignore[method-assign]
checkpoint.CheckpointStore.save = save  # type: ignore[method-assign]
checkpoint.save_file = save_file

if __name__ == "__main__":
    from convscope.cli import main

    sys.exit(main(sys.argv[1:]))
