"""`convscope evaluate RUN [--data PATH]`: a saved model on new data (default: its own test split)."""

from __future__ import annotations

import argparse
import json

from ..i18n import _
from .options import add_data_options, add_threads_option, data_kwargs


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help=_("evaluate a run on data"), description=_("Loss, accuracy, per-class scores."))
    p.add_argument("run_dir", metavar="RUN")
    add_data_options(p, default=None)
    p.add_argument("--json", action="store_true", help=_("print the metrics as JSON"))
    add_threads_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data import load
    from ..evaluation.evaluate import evaluate
    from ..runs import load_run, load_test_set
    from ..training.threads import apply_threads

    apply_threads(args.threads)
    trained = load_run(args.run_dir)
    if args.data is None:
        data = load_test_set(args.run_dir)[0]
    else:
        kwargs = data_kwargs(args)
        kwargs["class_names"] = kwargs["class_names"] or list(trained.class_names)
        data = load(args.data, **kwargs)
    result = evaluate(trained, data)
    print(json.dumps(result.metrics(), indent=2) if args.json else result.text())
    return 0
