"""The command line: a thin layer over the Python API.

Each sub-command lives in its own module with two functions, `add_parser(subparsers)` and
`run(args)`. User mistakes (`UserError`) become one sentence on stderr and exit code 2; a Ctrl-C one
sentence and exit code 130. A reader that closes our standard output stops nothing: the command finishes
with its output silenced and says so on stderr (`output.py`).
"""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from ..checks import printable
from ..errors import Interrupted, UserError
from ..i18n import _
from . import compare, datasets, evaluate, export, import_model, inspect, predict, report, serve, summary, sweep, train
from .options import Parser
from .output import guarded_stdout

COMMANDS = [train, evaluate, predict, summary, sweep, serve, export, inspect, report, compare, import_model, datasets]


def parser() -> argparse.ArgumentParser:
    root = Parser(  # its sub-parsers are Parsers: every --help shows the defaults
        prog="convscope",
        description="Train, explain and serve small convolutional image classifiers.",
    )
    root.add_argument("--version", action="version", version=f"convscope {__version__}")
    sub = root.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    with guarded_stdout() as stdout:  # help and usage texts too: `convscope train --help | head -1`
        args = parser().parse_args(argv)
        if args.command is None:
            parser().print_help()
            return 2
        code = _run(args)
    if stdout.reader_left and not stdout.told:
        print(
            _(
                "convscope {command}: the reader of the output went away; the command finished without printing the rest."
            ).format(command=args.command),
            file=sys.stderr,
        )
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.run(args) or 0)
    except Interrupted as exc:
        print(f"convscope {args.command}: {printable(exc)}", file=sys.stderr)
        return exc.exit_code
    except UserError as exc:
        print(f"convscope {args.command}: error: {printable(exc)}", file=sys.stderr)  # one line, whatever it quotes
        return 2
    except KeyboardInterrupt:
        print(f"convscope {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
