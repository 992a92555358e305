"""`convscope sweep`: an Optuna search over a spec's filters, kernel sizes, dropout, lr and batch size."""

from __future__ import annotations

import argparse
import sys

from ..i18n import _
from .options import add_data_options, add_setting, data_kwargs, fraction, positive_float, positive_int, presets


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help=_("search filters, kernel sizes, dropout, lr and batch size with Optuna"),
        description=_(
            "Train several variants of a model spec and keep the best; every trial is a run directory. Give a range as LOW,HIGH or a list as A,B,C; 'fixed' keeps the base spec's value."
        ),
    )
    add_data_options(p)
    p.add_argument(
        "--model",
        default="cnn",
        help=_("the base spec: a preset ({presets}) or a .yaml/.json file (default cnn)").format(presets=presets()),
    )
    p.add_argument("--trials", type=positive_int, default=20, help=_("trials to run now (default 20)"))
    # The training settings a trial takes, checked as `convscope train` checks them; a sweep's own defaults.
    add_setting(p, "epochs", default=10, help=_("at most this many epochs per trial (default 10)"))
    add_setting(p, "patience", default=3, help=None)
    add_setting(p, "validation_split", default=0.2, help=None)
    add_setting(p, "test_split")
    add_setting(p, "seed")
    add_setting(p, "device", default="auto", help=None)
    p.add_argument(
        "--filters", type=_range(positive_int), default=(8, 64), help=_("Conv2D filters LOW,HIGH (default 8,64)")
    )
    p.add_argument(
        "--kernel-sizes", type=_choices(positive_int), default=(3, 5), help=_("Conv2D kernel sizes (default 3,5)")
    )
    p.add_argument(
        "--dropout", type=_range(fraction), default=(0.0, 0.5), help=_("Dropout rate LOW,HIGH (default 0,0.5)")
    )
    p.add_argument(
        "--lr", type=_range(positive_float), default=(1e-4, 1e-2), help=_("learning rate LOW,HIGH (default 1e-4,1e-2)")
    )
    p.add_argument(
        "--batch-sizes", type=_choices(positive_int), default=(32, 64, 128), help=_("batch sizes (default 32,64,128)")
    )
    p.add_argument("--out", help=_("study directory (default sweeps/<timestamp>-<model>-sweep)"))
    p.add_argument(
        "--storage",
        help=_(
            "Optuna storage URL shared by several machines, e.g. postgresql://user:password@host/db, with the "
            "same --study-name on every machine (default: sqlite study.db in the study directory)"
        ),
    )
    p.add_argument("--study-name", help=_("name of the study in the storage (default: the study directory's name)"))
    p.add_argument("--timeout", type=positive_float, help=_("stop starting trials after this many seconds"))
    p.add_argument("--no-prune", action="store_true", help=_("train every trial to the end (no median pruning)"))
    p.add_argument("--verbose", action="store_true", help=_("show Optuna's own log lines besides one line per trial"))
    p.add_argument(
        "--grid",
        action="append",
        type=_grid_item,
        metavar="NAME=A,B,C",
        help=_(
            "instead of a search: train every combination of these values (filters, kernel_size, dropout, units, lr, batch_size, ...), changing nothing else; repeatable"
        ),
    )
    p.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        help=_("with --grid: runs per combination, seeds seed, seed+1, ... (default 3)"),
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..runs import check_writable
    from ..sweep import SearchSpace, SweepSettings, sweep

    if args.out is not None:
        check_writable(args.out, "--out")
    if args.grid:
        return run_grid(args)
    space = SearchSpace(args.filters, args.kernel_sizes, args.dropout, args.lr, args.batch_sizes)
    fixed_lr = 1e-3 if args.lr is None else args.lr[0]
    settings = SweepSettings(
        data=args.data,
        model=args.model,
        epochs=args.epochs,
        lr=fixed_lr,
        patience=args.patience,
        validation_split=args.validation_split,
        test_split=args.test_split,
        seed=args.seed,
        device=args.device,
        data_options={k: v for k, v in data_kwargs(args).items() if v is not None},
    )
    result = sweep(
        settings,
        trials=args.trials,
        space=space,
        out=args.out,
        storage=args.storage,
        study_name=args.study_name,
        prune=not args.no_prune,
        timeout=args.timeout,
        log=sys.stdout,
        verbose=args.verbose,
    )
    print("\n" + result.table())
    if result.best_spec is not None:
        print(
            _("\nbest: {best_run}\nspec written to {best_spec} (retrain: see {config})").format(
                best_run=result.best_run, best_spec=result.best_spec, config=result.path / "best.json"
            )
        )
    else:
        print(_("\nno trial finished; nothing to write."))
    return 0


def run_grid(args: argparse.Namespace) -> int:
    """`--grid`: `experiment` (every combination, `--repeats` seeds each), its table and whether the
    differences are larger than the spread of the repeats."""
    from ..experiment import experiment

    result = experiment(
        args.data,
        args.model,
        grid=dict(args.grid),
        repeats=args.repeats,
        seed=args.seed,
        test_size=args.test_split,
        validation_split=args.validation_split,
        epochs=args.epochs,
        patience=args.patience,
        out=args.out,
        log=sys.stdout,
        device=args.device,
        **{k: v for k, v in data_kwargs(args).items() if v is not None},
    )
    print("\n" + str(result))
    chart = result.path / "experiment.png" if result.path is not None else None
    if chart is not None:
        from ..presentation.experiment import experiment_chart  # matplotlib loads only when the chart is drawn

        experiment_chart(result).savefig(chart)
        print(_("chart: {path}").format(path=chart))
    return 0


def _grid_item(text: str) -> tuple[str, list]:
    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise argparse.ArgumentTypeError(_("expected NAME=A,B,C, got {text!r}").format(text=text))
    return name.strip(), [_number(part.strip()) for part in values.split(",")]


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _numbers(kind, text: str):
    try:
        return tuple(kind(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("expected {kind} values separated by commas, got {text!r}").format(kind=kind.__name__, text=text)
        ) from None


def _range(kind):
    def parse(text: str):
        if text == "fixed":
            return None
        values = _numbers(kind, text)
        if len(values) == 1:
            values = values * 2  # one value: a range of one, i.e. fixed at that value
        if len(values) != 2:
            raise argparse.ArgumentTypeError(_("expected LOW,HIGH, got {text!r}").format(text=text))
        return values

    return parse


def _choices(kind):
    def parse(text: str):
        return None if text == "fixed" else _numbers(kind, text)

    return parse
