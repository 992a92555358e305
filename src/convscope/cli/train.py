"""`convscope train`: load, split, build, fit with early stopping, evaluate, save a run.

Every flag is a field of `TrainSettings` by the same name (`--quiet` and `--no-report` turn `verbose` and
`report` off): the options come from the settings table (`settings_table.TRAIN`) and become the settings in
one loop (`settings_from_args`), so a new option is a row of that table and a field of `TrainSettings`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ..errors import UserError
from ..i18n import _
from ..settings_table import SETTINGS, TRAIN
from ..training.settings import TrainSettings
from .options import DATA_SETTINGS, add_data_options, add_setting, presets
from .output import reader_left


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help=_("train a model and write a run directory"),
        description=_("Train a model on a dataset; with no arguments, the cnn preset on mnist-5k."),
    )
    add_data_options(p)
    model_help = SETTINGS["model"].help or "{presets}"  # the table's sentence names the presets it lists
    add_setting(p, "model", help=_(model_help).format(presets=presets()))
    p.add_argument(
        "--config",
        metavar="CONFIG_JSON",
        help=_("retrain with the settings of a run's config.json (flags given as well override them)"),
    )
    # Training settings left unset come from the recipe: `keras` (the course) for every model but `fast`.
    # "auto" rather than None: the same device, but --help says what it means.
    shown = {"device": {"default": "auto"}}
    for setting in TRAIN:
        if setting.name not in DATA_SETTINGS and setting.name != "model":
            add_setting(p, setting.name, **shown.get(setting.name, {}))
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
    if not settings.verbose and path is not None:  # rank 0 wrote it; other torchrun ranks print nothing
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
