"""`convscope report RUN`: (re)write the run's self-contained report.html."""

from __future__ import annotations

import argparse

from ..i18n import _


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help=_("write report.html for a run"),
        description=_(
            "Write RUN/report.html: data, model summary with size formulas, curves, metrics, confusion matrix, galleries and feature maps, in one file that works offline."
        ),
    )
    p.add_argument("run_dir", metavar="RUN")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # matplotlib (~0.3 s) loads only when this command runs, not on every `convscope` call
    from ..presentation.report import write_report

    print(write_report(args.run_dir, samples=None))
    return 0
