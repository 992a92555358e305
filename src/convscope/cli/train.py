"""`convscope train`: load, split, build, fit with early stopping, evaluate, save a run."""

from __future__ import annotations

import argparse

from ..checks import MAX_LR
from ..errors import UserError
from ..runs import check_out_writable
from ..training.distributed import DistContext, process_group, train_in_processes
from ..training.fit import PRECISIONS
from ..training.recipes import RECIPES, SCHEDULES
from ..workflow import train
from .options import (
    add_data_options,
    data_kwargs,
    float_range,
    fraction,
    int_range,
    non_negative_float,
    non_negative_int,
    positive_int,
    seed,
)


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model and write a run directory",
                       description="Train a model on a dataset; with no arguments, the cnn preset on mnist-5k.")
    add_data_options(p)
    p.add_argument("--model", default="cnn", help="preset (mlp, cnn, cnn-wide, fast) or a .yaml/.json spec")
    # Training settings left unset come from the recipe: `keras` (the course) for every model but `fast`.
    p.add_argument("--recipe", choices=list(RECIPES),
                   help="a bundle of the settings below (default: keras, or fast for --model fast)")
    p.add_argument("--epochs", type=positive_int, help="at most this many epochs (keras recipe: 20)")
    p.add_argument("--batch-size", type=positive_int, help="keras recipe: 32")
    p.add_argument("--lr", type=float_range(0.0, MAX_LR, low_open=True), help="Adam learning rate, the peak of a one-cycle schedule (keras recipe: 1e-3)")
    p.add_argument("--patience", type=non_negative_int, help="early-stopping patience in epochs (keras recipe: 3)")
    p.add_argument("--min-delta", type=non_negative_float, default=0.0)
    p.add_argument("--monitor", default="val_loss", choices=["val_loss", "val_accuracy", "loss", "accuracy"])
    p.add_argument("--validation-split", type=fraction, help="keras recipe: 0.2")
    p.add_argument("--test-split", type=fraction, default=0.2)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1")
    p.add_argument("--precision", choices=list(PRECISIONS),
                   help="bf16 autocast; auto = bf16 where the hardware has it (keras recipe: fp32)")
    p.add_argument("--schedule", choices=list(SCHEDULES), help="learning rate over the run (keras recipe: constant)")
    p.add_argument("--label-smoothing", type=fraction, help="share of the target spread over all classes (keras recipe: 0)")
    p.add_argument("--random-shift", type=int_range(0, 1024, "a number of pixels"), metavar="PIXELS",
                   help="move each training image by up to this many pixels, fresh every epoch (keras recipe: 0)")
    p.add_argument("--out", help="run directory (default runs/<timestamp>-<model>)")
    p.add_argument("--nproc", type=int_range(1, 256, "a number of processes"), default=1,
                   help="data-parallel processes on this machine (DDP: gloo on CPU, NCCL on CUDA); "
                        "for several machines launch with torchrun -m convscope train instead")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: the idle cores, adjusted while training)")
    p.add_argument("--stream", action="store_true",
                   help="read a .npy file or picture folder batch by batch instead of loading it (data larger than memory)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html into the run directory")
    p.add_argument("--quiet", action="store_true", help="print only the run directory")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_out_writable(args.out)  # before any data is read: a bad --out must not cost a training run
    kwargs = dict(
        data=args.data, model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        patience=args.patience, min_delta=args.min_delta, monitor=args.monitor,
        validation_split=args.validation_split, test_split=args.test_split, seed=args.seed,
        out=args.out, device=args.device, precision=args.precision, verbose=not args.quiet,
        recipe=args.recipe, schedule=args.schedule, label_smoothing=args.label_smoothing, random_shift=args.random_shift,
        streaming=args.stream, report=not args.no_report, threads=args.threads, **data_kwargs(args),
    )
    ranks = DistContext.from_env()  # set by torchrun
    if args.nproc > 1 and ranks is not None:
        raise UserError("--nproc starts its own processes; under torchrun, set --nproc-per-node on torchrun instead.")
    if args.nproc > 1:
        path = train_in_processes(args.nproc, **kwargs)
    elif ranks is not None and ranks.active:
        with process_group(ranks, args.device):
            path = train(**kwargs, distributed=ranks).path
    else:
        path = train(**kwargs).path
    if args.quiet and path is not None:  # rank 0 wrote it; other torchrun ranks print nothing
        print(path)
    return 0
