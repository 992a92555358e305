"""`convscope compare RUN RUN ...`: a table of runs and their validation curves overlaid."""

from __future__ import annotations

import argparse
import sys

from ..i18n import ngettext
from ..runs import check_writable
from ..sweep import expand_study_dirs, is_storage_url, study_runs


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="compare runs: table and overlaid validation curves",
        description="Model, parameters, epochs, training time, test accuracy and loss of each run.",
    )
    p.add_argument(
        "run_dirs",
        metavar="RUN",
        nargs="+",
        help="run directories, a sweep directory for all its trials, or a sweep's storage URL (postgresql://...)",
    )
    p.add_argument("--study-name", help="with a storage URL: the study (default: the storage's only study)")
    p.add_argument("--save", metavar="DIR", help="also write DIR/compare.png (curves) and DIR/compare.html")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.save is not None:
        check_writable(args.save, "--save")
    # matplotlib (~0.3 s) loads only when this command runs, not on every `convscope` call
    from ..report.compare import compare_runs, comparison_text, write_comparison

    rows = compare_runs(expand_study_dirs(args.run_dirs, args.study_name))
    for url in filter(is_storage_url, args.run_dirs):
        elsewhere = study_runs(url, args.study_name).elsewhere
        if elsewhere:
            hosts = ", ".join(sorted({host for host, _run in elsewhere}))
            print(
                ngettext(
                    "{count} trial is not in the table: its run directory is on another machine ({hosts}).",
                    "{count} trials are not in the table: their run directories are on other machines ({hosts}).",
                    len(elsewhere),
                ).format(count=len(elsewhere), hosts=hosts),
                file=sys.stderr,
            )
    print(comparison_text(rows))
    if args.save:
        for path in write_comparison(rows, args.save):
            print(f"wrote {path}")
    return 0
