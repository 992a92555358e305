"""`convscope train`: load, split, build, fit with early stopping, evaluate, save a run."""

from __future__ import annotations

import argparse

from ..workflow import train
from .options import add_data_options, data_kwargs, fraction, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model and write a run directory",
                       description="Train a model on a dataset; with no arguments, the cnn preset on mnist-5k.")
    add_data_options(p)
    p.add_argument("--model", default="cnn", help="preset (mlp, cnn, cnn-wide) or a .yaml/.json spec")
    p.add_argument("--epochs", type=positive_int, default=20, help="at most this many epochs (default 20)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs (default 3)")
    p.add_argument("--min-delta", type=float, default=0.0)
    p.add_argument("--monitor", default="val_loss", choices=["val_loss", "val_accuracy", "loss", "accuracy"])
    p.add_argument("--validation-split", type=fraction, default=0.2)
    p.add_argument("--test-split", type=fraction, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--out", help="run directory (default runs/<timestamp>-<model>)")
    p.add_argument("--quiet", action="store_true", help="print only the run directory")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = train(
        args.data, args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        patience=args.patience, min_delta=args.min_delta, monitor=args.monitor,
        validation_split=args.validation_split, test_split=args.test_split, seed=args.seed,
        out=args.out, device=args.device, precision=args.precision, verbose=not args.quiet,
        **data_kwargs(args),
    )
    if args.quiet:
        print(result.path)
    return 0
