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

When a rank is lost (killed, its machine gone): a collective whose peer closed its connections fails at
once, and one whose peer went silent fails after the group's timeout (`CONVSCOPE_DIST_TIMEOUT`, seconds,
default 300, instead of torch's 30 minutes for gloo and 10 for NCCL). Either way the surviving ranks stop
with one sentence, and the per-epoch checkpoints let the run continue: by hand with `--resume`, or by
itself under `torchrun --max-restarts N`, whose restarted ranks see TORCHELASTIC_RESTART_COUNT > 0 and
resume (cli/train.py).

Before training, the ranks compare a fingerprint of the data each one loaded (`data.dataset.fingerprint`),
so that machines reading different copies of "the same" file are refused instead of training on both.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import UserError
from ..i18n import _
from .device import pick_device

DEFAULT_TIMEOUT_SECONDS = 300.0


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
            raise UserError(
                _("RANK={RANK!r} and WORLD_SIZE={WORLD_SIZE!r} must be integers.").format(
                    RANK=env["RANK"], WORLD_SIZE=env["WORLD_SIZE"]
                )
            ) from None

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
    timeout = datetime.timedelta(seconds=group_timeout())
    store = _attempt_store(ctx, timeout, os.environ)
    if store is not None:
        dist.init_process_group(
            backend_for(device), store=store, rank=ctx.rank, world_size=ctx.world_size, timeout=timeout
        )
    else:
        dist.init_process_group(backend_for(device), rank=ctx.rank, world_size=ctx.world_size, timeout=timeout)
    try:
        yield
        # Leave together: rank 0 still evaluates and writes the run while the others are done, and a
        # gloo rank whose peer has already torn down its connections aborts at exit.
        dist.barrier()
    except RuntimeError as exc:
        if not is_lost_rank(exc):
            raise
        raise lost_rank_error(ctx, exc) from None
    finally:
        dist.destroy_process_group()


def _attempt_store(ctx: DistContext, timeout: datetime.timedelta, env) -> dist.Store | None:
    """Under torchrun, the launcher's key-value store with keys of this attempt only (None elsewhere).

    torchrun's workers share one store with their launcher for the whole job, restarts included, and
    torch reads the peers' addresses from it without an attempt prefix: measured here, about 1 restart
    in 3 found the killed attempt's addresses first, failed to connect ("Connection refused") and cost
    another restart (or all of them). A prefix per restart count keeps each attempt's addresses apart."""
    if env.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or "MASTER_ADDR" not in env:
        return None
    client = dist.TCPStore(
        env["MASTER_ADDR"], int(env["MASTER_PORT"]), ctx.world_size, is_master=False, timeout=timeout
    )
    return dist.PrefixStore(f"convscope/attempt-{env.get('TORCHELASTIC_RESTART_COUNT', '0')}", client)


def group_timeout(env: dict[str, str] | None = None) -> float:
    """Seconds a collective waits for a silent rank before failing (CONVSCOPE_DIST_TIMEOUT, default 300)."""
    env = dict(os.environ) if env is None else env
    text = env.get("CONVSCOPE_DIST_TIMEOUT", "")
    if not text:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < 1e7:  # NaN fails too
        raise UserError(_("CONVSCOPE_DIST_TIMEOUT={value!r} must be a number of seconds above 0.").format(value=text))
    return seconds


def is_lost_rank(exc: BaseException) -> bool:
    """A collective that failed because a peer is gone or silent: torch's DistError, or the RuntimeError
    gloo raises from its transport ("Connection reset by peer", "Timed out waiting ...")."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc).lower()
    return "gloo" in text or "nccl" in text


def lost_rank_error(ctx: DistContext, exc: BaseException) -> UserError:
    """The one sentence a surviving rank ends with when another rank is gone or silent."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return UserError(
        _(
            "rank {rank} of {world} on {host} lost contact with another rank ({reason}); training stopped. "
            "The last completed epoch is saved: run the same command with --resume, or launch with "
            "torchrun --max-restarts N to continue by itself."
        ).format(rank=ctx.rank, world=ctx.world_size, host=socket.gethostname(), reason=reason)
    )


def check_same_data(fingerprint: str, ctx: DistContext, device: torch.device) -> None:
    """Refuse, on every rank, a run whose ranks loaded different data (compared: `fingerprint`s, all ranks)."""
    if not ctx.active:
        return
    mine = _pack(f"{fingerprint} {socket.gethostname()}", device)
    everyone = [torch.zeros_like(mine) for _ in range(ctx.world_size)]
    dist.all_gather(everyone, mine)
    seen = [_unpack(t).split(" ", 1) for t in everyone]
    ours, host0 = seen[0]
    for rank, (theirs, host) in enumerate(seen):
        if theirs != ours:
            raise UserError(
                _(
                    "rank {rank} on {host} loaded other data than rank 0 on {host0} (fingerprint {theirs} "
                    "against {ours}); every rank must read the same file: one shared path, or copies with "
                    "the same checksum."
                ).format(rank=rank, host=host, host0=host0, theirs=theirs, ours=ours)
            )


_PACKED = 256  # bytes of one packed string: a 16-digit hash, a space and a host name (at most 253 characters)


def _pack(text: str, device: torch.device) -> torch.Tensor:
    raw = text.encode()[:_PACKED]
    out = torch.zeros(_PACKED, dtype=torch.uint8)
    out[: len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
    return out.to(device)


def _unpack(packed: torch.Tensor) -> str:
    return bytes(packed.cpu().tolist()).rstrip(b"\0").decode(errors="replace")


def launch(nproc: int, fn: Callable[..., object], args: tuple = (), device: str | None = None) -> None:
    """Run `fn(*args, ctx)` in `nproc` local processes, one rank each (what `--nproc` does).

    `fn` must be importable by name (a module-level function): the ranks are fresh interpreters.
    """
    if nproc < 1:
        raise UserError(_("--nproc must be at least 1, got {nproc}.").format(nproc=nproc))
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
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank)
    )
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


def shard(batch, ctx: DistContext):
    """This rank's part of one global batch of indices (an array or a tensor): DistributedSampler's stride."""
    return batch[ctx.rank :: ctx.world_size]


class DataParallel:
    """The reducer of a DDP run (see the module docstring): shards, weights, sums and agrees."""

    def __init__(self, ctx: DistContext, device: torch.device):
        if ctx.active and not dist.is_initialized():
            raise UserError(
                _(
                    "rank {rank} of {world_size}: no process group; start ranks with `convscope train --nproc N`, torchrun, or inside convscope.training.distributed.launch."
                ).format(rank=ctx.rank, world_size=ctx.world_size)
            )
        self.ctx, self.device = ctx, device
        self.world_size, self.rank, self.is_main = ctx.world_size, ctx.rank, ctx.is_main

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.ctx.active:
            return model
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def plan(self, order: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, float, slice, int]]:
        # Weight = this rank's share of the global batch x world size: DDP's gradient average then
        # equals the mean over the whole global batch, also for a short last batch.  A rank with no
        # share of a short last batch still steps, on that batch with weight 0: every optimizer must
        # take every step, or the ranks' weights drift apart.
        world, mine = self.world_size, slice(self.rank, None, self.world_size)
        out = []
        for batch in order.split(batch_size):
            part = shard(batch, self.ctx)
            out.append(
                (part, len(part) * world / len(batch), mine, len(batch))
                if len(part)
                else (batch, 0.0, slice(None), len(batch))
            )
        return out

    def positions(self, n: int, batch_size: int) -> list[torch.Tensor]:
        mine = torch.arange(self.rank, n, self.world_size, device=self.device)
        return list(mine.split(batch_size))

    def sum(self, *values: torch.Tensor | float) -> tuple[float, ...]:
        stacked = torch.stack([torch.as_tensor(v).to(self.device, torch.float64) for v in values])
        if self.ctx.active:
            dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return tuple(float(v) for v in stacked.cpu())

    def before_validation(self, model: nn.Module) -> None:
        """All ranks validate, and rank 0 saves, rank 0's BatchNorm statistics."""
        if self.ctx.active:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def agree(self, stop: bool) -> bool:
        """Rank 0's decision, on every rank: the ranks must leave the epoch loop together."""
        if not self.ctx.active:
            return stop
        flag = torch.tensor([int(stop)], device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def barrier(self) -> None:
        if self.ctx.active:
            dist.barrier()
