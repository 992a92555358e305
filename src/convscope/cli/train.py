"""`convscope train`: load, split, build, fit with early stopping, evaluate, save a run.

Every flag is a field of `TrainSettings` by the same name: the flags become the settings in one
loop (`settings_from_args`), so a new option is one `add_argument` line here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ..checks import MAX_LR
from ..errors import UserError
from ..i18n import N_, _
from ..training.recipes import RECIPES, SCHEDULES
from ..training.settings import PRECISIONS, TrainSettings
from .options import (
    add_data_options,
    float_range,
    fraction,
    int_range,
    non_negative_float,
    non_negative_int,
    positive_int,
    presets,
    seed,
)
from .output import reader_left


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help=_("train a model and write a run directory"),
        description=_("Train a model on a dataset; with no arguments, the cnn preset on mnist-5k."),
    )
    add_data_options(p)
    p.add_argument(
        "--model", default="cnn", help=_("preset ({presets}) or a .yaml/.json spec").format(presets=presets())
    )
    p.add_argument(
        "--config",
        metavar="CONFIG_JSON",
        help=_("retrain with the settings of a run's config.json (flags given as well override them)"),
    )
    # Training settings left unset come from the recipe: `keras` (the course) for every model but `fast`.
    p.add_argument(
        "--recipe",
        choices=list(RECIPES),
        help=_("a bundle of the settings below (default: keras, or fast for --model fast)"),
    )
    p.add_argument("--epochs", type=positive_int, help=_("at most this many epochs (keras recipe: 20)"))
    p.add_argument("--batch-size", type=positive_int, help=_("keras recipe: 32"))
    p.add_argument(
        "--lr",
        type=float_range(0.0, MAX_LR, low_open=True),
        help=_("Adam learning rate, the peak of a one-cycle schedule (keras recipe: 1e-3)"),
    )
    p.add_argument("--patience", type=non_negative_int, help=_("early-stopping patience in epochs (keras recipe: 3)"))
    p.add_argument("--min-delta", type=non_negative_float, default=0.0)
    p.add_argument("--monitor", default="val_loss", choices=["val_loss", "val_accuracy", "loss", "accuracy"])
    p.add_argument("--validation-split", type=fraction, help=_("keras recipe: 0.2"))
    p.add_argument("--test-split", type=fraction, default=0.2)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--device", default="auto", help=_("auto (CUDA when available), cpu, cuda, cuda:1"))
    p.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        help=_("bf16 autocast; auto = bf16 where the hardware has it (keras recipe: fp32)"),
    )
    p.add_argument("--schedule", choices=list(SCHEDULES), help=_("learning rate over the run (keras recipe: constant)"))
    p.add_argument(
        "--label-smoothing", type=fraction, help=_("share of the target spread over all classes (keras recipe: 0)")
    )
    p.add_argument(
        "--random-shift",
        type=int_range(0, 1024, N_("a number of pixels")),
        metavar="PIXELS",
        help=_("move each training image by up to this many pixels, fresh every epoch (keras recipe: 0)"),
    )
    p.add_argument(
        "--reduce-lr-patience",
        type=non_negative_int,
        metavar="N",
        help=_(
            "ReduceLROnPlateau: multiply the learning rate by --reduce-lr-factor after N epochs without improvement of --monitor (default: off)"
        ),
    )
    p.add_argument("--reduce-lr-factor", type=fraction, default=0.1, help=_("see --reduce-lr-patience"))
    p.add_argument("--tensorboard", metavar="DIR", help=_("write TensorBoard logs (per-epoch scalars) into DIR"))
    p.add_argument("--out", help=_("run directory (default runs/<timestamp>-<model>)"))
    p.add_argument(
        "--resume",
        action="store_true",
        help=_("continue the run --out from its last completed epoch (same command, same result)"),
    )
    p.add_argument(
        "--nproc",
        type=int_range(1, 256, N_("a number of processes")),
        default=1,
        help=_(
            "data-parallel processes on this machine (DDP: gloo on CPU, NCCL on CUDA); for several machines launch with torchrun -m convscope train instead"
        ),
    )
    p.add_argument(
        "--threads", type=positive_int, help=_("torch threads (default: the idle cores, adjusted while training)")
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help=_("read a .npy file or picture folder batch by batch instead of loading it (data larger than memory)"),
    )
    p.add_argument("--no-report", action="store_true", help=_("do not write report.html into the run directory"))
    p.add_argument("--quiet", action="store_true", help=_("print only the run directory"))
    p.set_defaults(run=run, defaults=p)


def settings_from_args(args: argparse.Namespace) -> TrainSettings:
    """The flags as settings; with --config, the file's settings with every flag the user gave on top."""
    from ..runs import read_json

    given = {name: getattr(args, name) for name in TrainSettings.names() if hasattr(args, name)}
    if args.config is None:
        return TrainSettings.of(None, given)
    base = TrainSettings.from_config(read_json(args.config), args.config)
    base = TrainSettings.of(base, {"out": None, "resume": False})
    defaults = {name: args.defaults.get_default(name) for name in given}
    return TrainSettings.of(base, {k: v for k, v in given.items() if v != defaults[k]})


def run(args: argparse.Namespace) -> int:
    from ..training.distributed import DistContext, process_group  # torch.distributed only when training
    from ..workflow import train

    settings = settings_from_args(args)
    ranks = DistContext.from_env()  # set by torchrun
    if settings.nproc > 1 and ranks is not None:
        raise UserError(
            _("--nproc starts its own processes; under torchrun, set --nproc-per-node on torchrun instead.")
        )
    if ranks is not None and ranks.active:
        settings = elastic_settings(settings, os.environ)
    if ranks is not None and ranks.active:
        with process_group(ranks, settings.device):
            path = train(settings=settings, distributed=ranks).path
    else:
        path = train(settings=settings).path
    if settings.quiet and path is not None:  # rank 0 wrote it; other torchrun ranks print nothing
        print(path)
    closed = reader_left()
    if closed is not None and path is not None:
        closed.told = True
        print(
            _(
                "convscope train: the reader of the output went away; training went on quietly and wrote the run to {path}"
            ).format(path=path),
            file=sys.stderr,
        )
    return 0


def elastic_settings(settings: TrainSettings, env: Mapping[str, str]) -> TrainSettings:
    """The settings of one torchrun rank: every rank and every restart must name one run (`--out`), and a rank
    torchrun restarted after a lost worker (TORCHELASTIC_RESTART_COUNT > 0) resumes the run's saved state."""
    if settings.out is None:
        raise UserError(
            _(
                "under torchrun, give --out: every rank, on every machine and after every restart, "
                "must name the same run directory."
            )
        )
    try:
        restarts = int(env.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    except ValueError:
        restarts = 0
    from ..training.checkpoint import state_dir_for  # torch: only a run under torchrun gets here

    saved = state_dir_for(settings.out) / "settings.json"
    if restarts > 0 and not settings.resume and not Path(settings.out).exists() and saved.is_file():
        return TrainSettings.of(settings, {"resume": True})
    return settings
