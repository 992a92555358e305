"""`convscope compare RUN RUN ...`: a table of runs and their validation curves overlaid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..i18n import _, ngettext


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare",
        help=_("compare runs: table and overlaid validation curves"),
        description=_("Model, parameters, epochs, training time, test accuracy and loss of each run."),
    )
    p.add_argument(
        "run_dirs",
        metavar="RUN",
        nargs="+",
        help=_("run directories, a sweep directory for all its trials, or a sweep's storage URL (postgresql://...)"),
    )
    p.add_argument("--study-name", help=_("with a storage URL: the study (default: the storage's only study)"))
    p.add_argument("--save", metavar="DIR", help=_("also write DIR/compare.png (curves) and DIR/compare.html"))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..runs import check_writable
    from ..sweep import TRIALS_DIR, expand_study_dirs, is_storage_url

    if args.save is not None:
        check_writable(args.save, "--save")
    # matplotlib (~0.3 s) loads only when this command runs, not on every `convscope` call
    from ..report.compare import compare_runs, comparison_text, write_comparison

    studies = any(is_storage_url(path) or (Path(path) / TRIALS_DIR).is_dir() for path in args.run_dirs)
    runs = expand_study_dirs(args.run_dirs, args.study_name)
    rows = compare_runs(runs.here, by_objective=studies)
    if runs.elsewhere:
        hosts = ", ".join(sorted({host for host, _run in runs.elsewhere}))
        print(
            ngettext(
                "{count} trial is not in the table: its run directory is on another machine ({hosts}).",
                "{count} trials are not in the table: their run directories are on other machines ({hosts}).",
                len(runs.elsewhere),
            ).format(count=len(runs.elsewhere), hosts=hosts),
            file=sys.stderr,
        )
    print(comparison_text(rows, by_objective=studies))
    if args.save:
        for path in write_comparison(rows, args.save):
            print(_("wrote {path}").format(path=path))
    return 0
