"""A run's in-progress state: written after every epoch, so that `--resume` continues a killed run.

    runs/.x.resume/
      settings.json                    the settings the run started with (`CheckpointStore.start`)
      rank0-epoch0003.safetensors      everything one rank needs to continue after epoch 3

The folder's whole life is `CheckpointStore`'s: `start` makes it (discarding an interrupted run's
state), `save` after every epoch, `restore` on `--resume`, and `clear` once the run is written (or
when nothing of it is worth keeping).

One file per rank and epoch, written under a temporary name and renamed (atomic on POSIX): a kill
at any moment leaves whole files only. Tensors (weights, Adam's moments, the early-stopping
snapshot, every random generator's state) are safetensors; everything else (epoch, history rows,
learning-rate schedule, callback state, Adam's hyper-parameters, the thread count and device the
epoch ran on) is JSON in the file's metadata. No pickle anywhere.

What a resumed epoch depends on, each restored: the weights and BatchNorm's buffers (moving
statistics, `num_batches_tracked`), Adam's step counts and moments (laid out like their parameters
again, see `_lay_out_like_params`), the schedule's step count, the callbacks' state, and two
generators: torch's global CPU one (Dropout masks) and the shuffler (the next epoch's order, drawn
when that epoch begins, and the random shifts). NumPy's and Python's global generators are not
drawn while training, so there is nothing of theirs to save.
`saved_state.read_state` reads a file back, checking every field against the run being resumed
before anything is restored.

Each rank keeps its last two epochs: ranks run in lockstep (every epoch ends in collectives), so
when rank 0 has written epoch e every rank has written e - 1, and some epoch is complete on all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file
from torch import nn

from ..errors import UserError
from ..i18n import _
from .saved_state import read_state

if TYPE_CHECKING:
    from .callbacks import Callback

_FILE = re.compile(r"rank(\d+)-epoch(\d+)\.safetensors")


def state_dir_for(out: str | os.PathLike) -> Path:
    """The hidden folder beside the run directory `out` that holds its in-progress state."""
    out = Path(out)
    return out.parent / f".{out.name}.resume"


@dataclass
class TrainingState:
    """The live objects one rank's next epoch depends on: what `CheckpointStore` saves and restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    shuffler: torch.Generator
    callbacks: list[Callback]  # this rank's (files are rank 0's), in the order they were saved
    fit_settings: dict[str, Any]  # what the run computes with: a resume must find the same
    threads: int | None = None  # the fixed intra-op thread count the epochs run with; None: adaptive


@dataclass
class Restored:
    epoch: int  # epochs completed
    stopped: bool  # the last completed epoch ended training (early stopping)
    rows: list[dict[str, float]]
    generators: list[str]  # the random generators it set, by name
    threads: int | None  # the intra-op threads the saved epoch ran with; None: adaptive (no fixed count)
    device: str


class CheckpointStore:
    SETTINGS = "settings.json"

    def __init__(self, directory: str | os.PathLike, rank: int = 0, world_size: int = 1):
        self.directory, self.rank, self.world_size = Path(directory), rank, world_size

    @classmethod
    def beside(cls, out: str | os.PathLike, rank: int = 0, world_size: int = 1) -> CheckpointStore:
        """The store of the run that will be written to `out` (`state_dir_for`)."""
        return cls(state_dir_for(out), rank, world_size)

    @property
    def settings_file(self) -> Path:
        """The settings the run started with, which `--resume` compares against."""
        return self.directory / self.SETTINGS

    def start(self, settings: dict[str, Any], say: Callable[[str], None]) -> None:
        """A fresh folder holding `settings`; an interrupted run's state found there is discarded, and `say` tells."""
        if self.directory.exists():
            say(
                _("(discarding the saved state of an interrupted run in {state}; --resume would continue it)").format(
                    state=self.directory
                )
            )
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        partial = self.directory / f".{self.SETTINGS}.tmp"  # a kill mid-write leaves no half a file for --resume
        partial.write_text(json.dumps(settings, indent=2) + "\n")
        partial.replace(self.settings_file)

    def _path(self, rank: int, epoch: int) -> Path:
        return self.directory / f"rank{rank}-epoch{epoch:04d}.safetensors"

    def epochs(self, rank: int) -> set[int]:
        if not self.directory.is_dir():
            return set()
        return {int(m[2]) for p in self.directory.iterdir() if (m := _FILE.fullmatch(p.name)) and int(m[1]) == rank}

    def latest(self) -> int | None:
        """The last epoch every rank saved, or None."""
        common = set.intersection(*(self.epochs(r) for r in range(self.world_size)))
        return max(common) if common else None

    def save(self, epoch: int, state: TrainingState, rows: list[dict[str, float]], stopped: bool) -> None:
        """This rank's state after `epoch`, with the history so far and whether that epoch ended training."""
        model, optimizer, scheduler, shuffler = state.model, state.optimizer, state.scheduler, state.shuffler
        tensors: dict[str, torch.Tensor] = {}

        def put(prefix: str, mapping: dict) -> None:
            tensors.update({f"{prefix}{k}": v.detach().cpu().contiguous() for k, v in mapping.items()})

        put("model.", model.state_dict())
        opt = optimizer.state_dict()
        opt_json: dict[str, Any] = {"param_groups": opt["param_groups"], "state": {}}
        for index, entry in opt["state"].items():
            opt_json["state"][str(index)] = {k: v for k, v in entry.items() if not isinstance(v, torch.Tensor)}
            put(f"optim.{index}.", {k: v for k, v in entry.items() if isinstance(v, torch.Tensor)})
        rng = {"torch": torch.get_rng_state(), "shuffler": shuffler.get_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
        put("rng.", rng)
        cb_json = []
        for i, cb in enumerate(state.callbacks):
            plain: dict[str, Any] = {}
            for key, value in cb.state_dict().items():
                if isinstance(value, torch.Tensor):
                    put(f"cb{i}.{key}", {"": value})
                    plain[key] = {"tensor": True}
                elif isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
                    put(f"cb{i}.{key}.", value)
                    plain[key] = {"tensors": list(value)}
                else:
                    plain[key] = {"value": value}
            cb_json.append({"type": type(cb).__name__, "state": plain})
        meta = {
            "epoch": epoch,
            "stopped": stopped,
            "rows": rows,
            "optimizer": opt_json,
            "fit": state.fit_settings,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "callbacks": cb_json,
            "threads": state.threads,
            "device": _device_of(model),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self._path(self.rank, epoch)
        tmp = final.with_name(f".{final.name}.tmp")
        save_file(tensors, str(tmp), metadata={"state": json.dumps(meta)})
        os.replace(tmp, final)
        for old in self.epochs(self.rank):
            if old < epoch - 1:
                self._path(self.rank, old).unlink(missing_ok=True)

    def restore(self, state: TrainingState) -> Restored:
        """Continue from the last saved epoch; every field is checked (`read_state`) before anything changes."""
        epoch = self.latest()
        if epoch is None:
            raise UserError(_("{directory}: holds no completed epoch to resume from.").format(directory=self.directory))
        saved = read_state(
            self._path(self.rank, epoch),
            epoch,
            model=state.model,
            optimizer=state.optimizer,
            scheduler=state.scheduler,
            callbacks=state.callbacks,
            fit_settings=state.fit_settings,
        )
        state.model.load_state_dict(saved.model)
        state.optimizer.load_state_dict(saved.optimizer)
        _lay_out_like_params(state.optimizer)
        if state.scheduler is not None and saved.scheduler is not None:  # both or neither (read_state)
            state.scheduler.load_state_dict(saved.scheduler)
        torch.set_rng_state(saved.rng["torch"])
        state.shuffler.set_state(saved.rng["shuffler"])
        cuda = [saved.rng[f"cuda{i}"] for i in range(len(saved.rng)) if f"cuda{i}" in saved.rng]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
        for cb, kept in zip(state.callbacks, saved.callbacks):
            cb.load_state_dict(kept)
        generators = ["torch", "shuffler"] + [f"cuda{i}" for i in range(len(cuda))]
        return Restored(epoch, saved.stopped, saved.rows, generators, saved.threads, saved.device)

    def clear(self) -> None:
        """Remove the folder: the run is written, or nothing of it is worth resuming."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def clear_unsaved(self) -> None:
        """After a fresh run failed: remove the folder if no epoch was saved (a saved one stays for --resume)."""
        if self.latest() is None:
            self.clear()


def _device_of(model) -> str:
    first = next(iter(model.parameters()), None)
    return first.device.type if first is not None else "cpu"


def _lay_out_like_params(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (Adam's moments) its parameter's memory layout again.

    `Optimizer.load_state_dict` keeps the layout of the tensors it is handed, and the saved ones are
    contiguous, while the conv kernels train channels-last. torch's fused CPU Adam pairs a parameter
    with its moments by memory position, not by index: measured on a 4x3x3x3 channels-last kernel,
    one step with contiguous moments lands up to 0.16 away from the same step with moments laid out
    like the kernel (foreach Adam: 0.0), and a resumed `cnn` left the uninterrupted run's path.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in list(state.items()):
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def identity_caveats(saved_threads: int | None, threads: int | None, saved_device: str, device: str) -> list[str]:
    """Why a resumed run may not end bit-identical to an uninterrupted one (pure); empty: it will.

    Identity holds on the CPU when both processes ran with the same fixed thread count: the number of
    threads decides how reductions are split, hence float rounding.
    """
    caveats = []
    if saved_threads is None or threads is None:
        caveats.append(
            _(
                "the thread count was chosen while training (no --threads), and another count rounds floats "
                "differently; give the same --threads to both runs for an identical result."
            )
        )
    elif saved_threads != threads:
        caveats.append(
            _(
                "the killed run trained with --threads {then} and this one with --threads {now}; "
                "another thread count rounds floats differently."
            ).format(then=saved_threads, now=threads)
        )
    for name in sorted({saved_device, device} - {"cpu"}):
        caveats.append(
            _("on {device}, kernels are not guaranteed to round alike from one process to the next.").format(
                device=name
            )
        )
    return caveats
