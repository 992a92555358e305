"""The command line: a thin layer over the Python API.

Each sub-command lives in its own module with two functions, `add_parser(subparsers)` and
`run(args)`. User mistakes (`UserError`) become one sentence on stderr and exit code 2; a Ctrl-C one
sentence and exit code 130. A reader that closes our standard output stops nothing: the command finishes
with its output silenced and says so on stderr (`output.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import sys

from .._version import __version__
from ..checks import printable
from ..errors import Interrupted, UserError
from ..i18n import _, set_language
from . import compare, datasets, evaluate, export, import_model, inspect, predict, report, serve, summary, sweep, train
from .options import Parser, add_language_option, language_asked
from .output import guarded_stdout

COMMANDS = [train, evaluate, predict, summary, sweep, serve, export, inspect, report, compare, import_model, datasets]


def parser() -> argparse.ArgumentParser:
    root = Parser(  # its sub-parsers are Parsers: every --help shows the defaults
        prog="convscope",
        description=_("Train, explain and serve small convolutional image classifiers."),
    )
    root.add_argument("--version", action="version", version=f"convscope {__version__}")
    add_language_option(root)
    sub = root.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    for command_parser in sub.choices.values():  # `convscope train --lang ko` as well as `convscope --lang ko train`
        add_language_option(command_parser)
    return root


def main(argv: list[str] | None = None) -> int:
    """Run one command; `--lang` holds for this call only (a copy of the context), not for the caller afterwards."""
    return contextvars.copy_context().run(_main, sys.argv[1:] if argv is None else list(argv))


def _main(argv: list[str]) -> int:
    # --lang is read before the parser is built: the help texts are translated as the parser is made.
    asked = language_asked(argv)
    if asked is not None:
        with contextlib.suppress(UserError):  # argparse refuses the value below, with its usage and exit code 2
            set_language(asked)
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
        print(
            _("convscope {command}: error: {text}").format(command=args.command, text=printable(exc)), file=sys.stderr
        )  # one line, whatever it quotes
        return 2
    except KeyboardInterrupt:
        print(_("convscope {command}: interrupted.").format(command=args.command), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
