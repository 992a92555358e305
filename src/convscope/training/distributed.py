"""Data-parallel training on `torch.distributed`, and the epoch loop for data streamed from disk.

One process per rank, each holding the whole model; PyTorch's DistributedDataParallel averages the
gradients (gloo on CPU, NCCL on CUDA).  Launch with `convscope train --nproc N` (spawns N local
processes) or with `torchrun ... -m convscope train ...` across machines (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT come from the environment).

What the ranks agree on, and why a 2-rank run follows the 1-rank run with the same settings:
- Every rank draws the same epoch permutation from the same seed and cuts the same global batches
  of `batch_size`; rank r takes positions r, r+W, r+2W... of each (DistributedSampler's stride),
  so together the ranks see exactly the batches a single process sees, in the same order.
- Each rank's mean loss is weighted by its share of the global batch, so the averaged gradient is
  the global batch's mean gradient even when the last batch does not divide evenly.  A rank with
  nothing in a short last batch steps with weight 0, so every optimizer takes every step.
- Loss and accuracy are summed across ranks (`all_reduce`), validation is sharded the same way,
  and rank 0 decides early stopping and broadcasts the decision, so every rank stops together.
- BatchNormalization uses each rank's local batch statistics (DDP's default, and Keras'
  MirroredStrategy default; torch's SyncBatchNorm does not run on CPU).  The moving averages are
  broadcast from rank 0 before every validation pass, so all ranks validate, and rank 0 saves,
  one set of statistics.  Dropout masks are drawn per rank (seed + rank).  Both make a 2-rank
  run differ slightly from 1 rank; without BatchNorm and Dropout the two match to float rounding.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..data.dataset import Dataset
from ..data.scaling import MinMaxScaler
from ..data.streaming import is_streaming, read_batches
from ..errors import UserError
from ..models.build import resolve_spec
from ..runs import default_run_dir
from ..workflow import train
from .device import pick_device
from .fit import Tensors
from .trained_model import predict_batch


@dataclass(frozen=True)
class DistContext:
    """Which rank this process is among how many; (0, 1) is a plain single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the rank on this machine: picks the GPU

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> DistContext | None:
        """The context torchrun sets up, or None outside torchrun."""
        env = dict(os.environ) if env is None else env
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return None
        try:
            rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
            return cls(rank, world, int(env.get("LOCAL_RANK", rank)))
        except ValueError:
            raise UserError(f"RANK={env['RANK']!r} and WORLD_SIZE={env['WORLD_SIZE']!r} must be integers.") from None

    def device(self, requested: str | torch.device | None) -> torch.device:
        """The device this rank trains on: its own GPU (by local rank) when CUDA is asked for."""
        device = requested if isinstance(requested, torch.device) else pick_device(requested)
        if device.type == "cuda" and self.active:
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device


def backend_for(device: str | torch.device | None) -> str:
    kind = device.type if isinstance(device, torch.device) else pick_device(device).type
    return "nccl" if kind == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(ctx: DistContext, device: str | torch.device | None = None) -> Iterator[None]:
    """Join the ranks (MASTER_ADDR/MASTER_PORT from the environment) for the duration of the block."""
    if not ctx.active or dist.is_initialized():
        yield
        return
    dist.init_process_group(backend_for(device), rank=ctx.rank, world_size=ctx.world_size)
    try:
        yield
        # Leave together: rank 0 still evaluates and writes the run while the others are done, and a
        # gloo rank whose peer has already torn down its connections aborts at exit.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def launch(nproc: int, fn: Callable[..., object], args: tuple = (), device: str | None = None) -> None:
    """Run `fn(*args, ctx)` in `nproc` local processes, one rank each (what `--nproc` does).

    `fn` must be importable by name (a module-level function): the ranks are fresh interpreters.
    """
    if nproc < 1:
        raise UserError(f"--nproc must be at least 1, got {nproc}.")
    port = _free_port()
    try:
        mp.spawn(_rank_main, args=(nproc, port, fn, args, device), nprocs=nproc, join=True)
    except mp.ProcessRaisedException as exc:
        marker = "UserError: "
        last = str(exc).strip().splitlines()[-1]
        if marker in last:  # a user mistake in a rank reads the same as in one process
            raise UserError(last.split(marker, 1)[1]) from None
        raise


def _rank_main(rank: int, nproc: int, port: int, fn: Callable[..., object], args: tuple, device: str | None) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank))
    # Ranks share the machine's cores; more threads than cores makes every rank wait on the others.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    ctx = DistContext(rank, nproc, rank)
    with process_group(ctx, device):
        fn(*args, ctx)
    # The rank's work is done and the group is destroyed; leaving through the interpreter's normal
    # shutdown still lets gloo's C++ threads abort it now and then ("terminate called without an
    # active exception", about 1 run in 8 here), which would fail a finished run. A rank that
    # raised never gets here: mp.spawn reports its exception as usual.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shard(batch: np.ndarray, ctx: DistContext) -> np.ndarray:
    """This rank's part of one global batch of indices."""
    return batch[ctx.rank :: ctx.world_size]


class _Feed:
    """One split as batches on the device: gathered from resident tensors, or read from disk per batch."""

    def __init__(self, data: Dataset, scaler: MinMaxScaler, device: torch.device):
        self.data, self.scaler, self.device = data, scaler, device
        self.resident = None if is_streaming(data) else Tensors.of(data, scaler, device)

    def __len__(self) -> int:
        return len(self.data)

    def batches(self, index_batches: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.resident is not None:
            for idx in index_batches:
                at = torch.as_tensor(idx, device=self.device)
                yield self.resident.x[at], self.resident.y[at]
            return
        workers = getattr(self.data, "workers", 0)
        for images, labels in read_batches(self.data, index_batches, workers):
            x = self.scaler.transform(images).to(self.device).contiguous(memory_format=torch.channels_last)
            yield x, labels.to(self.device)


class ParallelLoop:
    """`fit`'s training and validation passes for several ranks and/or data streamed from disk.

    With one rank and in-memory data it computes what `fit`'s own loop computes; `fit` keeps its
    own loop for that case so the default path carries none of this.
    """

    def __init__(self, model: nn.Module, optimizer, train: Dataset, validation: Dataset | None, scaler: MinMaxScaler,
                 device: torch.device, batch_size: int, shuffler: torch.Generator, autocast, progress,
                 ctx: DistContext | None):
        self.ctx = ctx or DistContext()
        if self.ctx.active and not dist.is_initialized():
            raise UserError(
                f"rank {self.ctx.rank} of {self.ctx.world_size}: no process group; start ranks with "
                "`convscope train --nproc N`, torchrun, or inside convscope.training.distributed.launch."
            )
        self.model, self.optimizer, self.device = model, optimizer, device
        self.net = model
        if self.ctx.active:
            self.net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        self.train, self.validation = _Feed(train, scaler, device), (
            _Feed(validation, scaler, device) if validation is not None else None)
        self.batch_size, self.shuffler, self.autocast, self.progress = batch_size, shuffler, autocast, progress

    def train_epoch(self) -> dict[str, float]:
        self.net.train()
        n, world = len(self.train), self.ctx.world_size
        order = torch.randperm(n, generator=self.shuffler).numpy()  # the same draw on every rank
        global_batches = [order[start : start + self.batch_size] for start in range(0, n, self.batch_size)]
        # Weight = this rank's share of the global batch x world size: DDP's gradient average then
        # equals the mean over the whole global batch, also for a short last batch.  A rank with no
        # share of a short last batch still steps, on that batch with weight 0: every optimizer must
        # take every step, or the ranks' weights drift apart.
        plan = []
        for batch in global_batches:
            mine = shard(batch, self.ctx)
            plan.append((mine, len(mine) * world / len(batch)) if len(mine) else (batch, 0.0))
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.float64)
        seen = 0
        for step, ((x, y), (_, weight)) in enumerate(zip(self.train.batches([idx for idx, _ in plan]), plan), start=1):
            with self.autocast():
                logits = self.net(x)
                loss = F.cross_entropy(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * weight if weight != 1.0 else loss).backward()
            self.optimizer.step()
            if weight == 0.0:
                continue
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            if self.progress.live:
                self.progress.step(step, loss_sum.item() / seen, correct.item() / seen)
        total_loss, total_correct = self._sum(loss_sum, correct)
        return {"loss": total_loss / n, "accuracy": total_correct / n}

    @torch.inference_mode()
    def validate(self) -> tuple[float, float]:
        """Validation loss and accuracy over every rank's shard, with rank 0's BatchNorm statistics."""
        assert self.validation is not None
        if self.ctx.active:
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)
        self.model.eval()
        n = len(self.validation)
        positions = np.arange(self.ctx.rank, n, self.ctx.world_size)
        # Streamed images are validated in training-sized batches: the size the user made fit in memory.
        # predict_batch is what single-process validation uses, so one rank sums the same way
        size = predict_batch(self.device) if self.validation.resident is not None else self.batch_size
        chunks = [positions[start : start + size] for start in range(0, len(positions), size)]
        loss_sum, correct = 0.0, 0
        for x, y in self.validation.batches(chunks):
            with self.autocast():
                logits = self.model(x).float()  # the bare module: no DDP hooks outside training
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
        total_loss, total_correct = self._sum(torch.tensor(loss_sum, dtype=torch.float64), torch.tensor(float(correct)))
        return total_loss / max(n, 1), total_correct / max(n, 1)

    def agree(self, stop: bool) -> bool:
        """Rank 0's decision, on every rank: the ranks must leave the epoch loop together."""
        if not self.ctx.active:
            return stop
        flag = torch.tensor([int(stop)], device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def _sum(self, *values: torch.Tensor) -> tuple[float, ...]:
        stacked = torch.stack([v.to(self.device, torch.float64) for v in values])
        if self.ctx.active:
            dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return tuple(float(v) for v in stacked.cpu())


def train_in_processes(nproc: int, **train_kwargs) -> Path:
    """`convscope.train(**train_kwargs)` on `nproc` local ranks; returns the run directory rank 0 wrote."""
    # Decided here, once: each rank would otherwise stamp its own default directory name.
    out = Path(train_kwargs.pop("out", None) or default_run_dir(resolve_spec(train_kwargs.get("model", "cnn")).name))
    if out.exists():
        raise UserError(f"run directory {out} already exists; choose another --out.")
    launch(nproc, _train_rank, (train_kwargs, str(out)), device=train_kwargs.get("device"))
    return out


def _train_rank(train_kwargs: dict, out: str, ctx: DistContext) -> None:
    train(**train_kwargs, out=out, distributed=ctx)
