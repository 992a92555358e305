"""How long an epoch will take, said before the first one starts: one line from a short measured step.

Two training steps (forward, backward) on one batch of zeros of the real shape, on a copy of the model
(the weights, BatchNorm statistics and random generators of the run are untouched), the second one timed;
times the steps of an epoch, plus a validation pass at a third of a step's cost per batch (forward only).
The model's FLOPs per image are named beside it, so a slow estimate has its reason on the same line.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..i18n import _
from .diagnostics import steps_per_epoch


@dataclass(frozen=True)
class Estimate:
    seconds_per_epoch: float
    where: str  # "2 CPU cores", "cuda:0"
    flops_per_image: int | None

    def line(self) -> str:
        """'about 110 s per epoch on 2 CPU cores (277 MFLOPs per image)'."""
        text = _("about {seconds} per epoch on {where}").format(
            seconds=_duration(self.seconds_per_epoch), where=self.where
        )
        if self.flops_per_image:
            text += _(" ({flops} per image)").format(flops=_flops(self.flops_per_image))
        return text


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 600:
        return f"{seconds:.0f} s"
    return _("{minutes:.0f} min").format(minutes=seconds / 60)


def _flops(n: int) -> str:
    for unit, size in (("GFLOPs", 1e9), ("MFLOPs", 1e6), ("kFLOPs", 1e3)):
        if n >= size:
            return f"{n / size:.0f} {unit}" if n >= 10 * size else f"{n / size:.1f} {unit}"
    return f"{n} FLOPs"


def where(device: torch.device) -> str:
    if device.type == "cpu":
        n = torch.get_num_threads()
        return _("{n} CPU cores").format(n=n) if n != 1 else _("1 CPU core")
    return str(device)


def measure_step(
    model: nn.Module, input_shape: tuple[int, ...], batch_size: int, device: torch.device, autocast
) -> float:
    """Seconds of one training step (forward and backward) on a batch, measured on a copy of the model."""
    probe = copy.deepcopy(model).train()
    h, w, c = input_shape
    x = torch.zeros((batch_size, c, h, w), device=device).contiguous(memory_format=torch.channels_last)
    y = torch.zeros(batch_size, dtype=torch.long, device=device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        seconds = 0.0
        for _step in range(2):  # the first step pays for allocation and kernel choice: not timed
            started = time.perf_counter()
            with autocast():
                loss = F.cross_entropy(probe(x).float(), y)
            loss.backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - started
    del probe
    return seconds


def estimate_epoch(
    model: nn.Module,
    input_shape: tuple[int, ...],
    train_size: int,
    validation_size: int,
    batch_size: int,
    device: torch.device,
    autocast,
) -> Estimate:
    step = measure_step(model, input_shape, min(batch_size, max(train_size, 1)), device, autocast)
    steps = steps_per_epoch(train_size, 0.0, batch_size) or 0
    validation_steps = steps_per_epoch(validation_size, 0.0, batch_size) or 0
    info = getattr(model, "info", None)  # a built Network knows its FLOPs per image
    flops = sum(int(getattr(l, "flops", 0)) for l in info) if info else None
    return Estimate(step * (steps + validation_steps / 3), where(device), flops or None)
