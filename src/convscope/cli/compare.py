"""`convscope compare RUN RUN ...`: a table of runs and their validation curves overlaid."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..i18n import _


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare",
        help=_("compare runs: table and overlaid validation curves"),
        description=_("Model, parameters, epochs, training time, test accuracy and loss of each run."),
    )
    p.add_argument(
        "run_dirs", metavar="RUN", nargs="+", help=_("run directories, or a sweep directory for all its trials")
    )
    p.add_argument("--save", metavar="DIR", help=_("also write DIR/compare.png (curves) and DIR/compare.html"))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..runs import check_writable
    from ..sweep import TRIALS_DIR, expand_study_dirs

    if args.save is not None:
        check_writable(args.save, "--save")
    # matplotlib (~0.3 s) loads only when this command runs, not on every `convscope` call
    from ..report.compare import compare_runs, comparison_text, write_comparison

    studies = any((Path(path) / TRIALS_DIR).is_dir() for path in args.run_dirs)
    rows = compare_runs(expand_study_dirs(args.run_dirs), by_objective=studies)
    print(comparison_text(rows, by_objective=studies))
    if args.save:
        for path in write_comparison(rows, args.save):
            print(_("wrote {path}").format(path=path))
    return 0
