"""What every sub-command shares: argument types (bad values fail in argparse with exit code 2), the
help formatter that shows each option's default (every sub-command's parser is a `Parser`, so an option added
later shows its default in `--help` too), and the preset list.

Every numeric flag goes through one of these, so `nan`, `inf`, negative numbers and values no
setting can use are refused before any data is read, with argparse's one-line message:
"argument --lr: must be a finite number > 0, got 'nan'".
"""

from __future__ import annotations

import argparse
import copy
import math
from collections.abc import Callable

from ..checks import MAX_SEED
from ..models.presets import PRESETS
from . import suggest


def presets() -> str:
    """The preset names, from the registry itself: a help text never lists a copy that falls behind."""
    return ", ".join(PRESETS)


class ShowDefaults(argparse.HelpFormatter):
    """Appends "(default: X)" to each option whose default means something and whose help does not state it.

    Unlike argparse.ArgumentDefaultsHelpFormatter, this also covers options without a help text, skips
    defaults that mean "not given" (None, False) and writes tuples as they are typed (28,28,1)."""

    def add_argument(self, action: argparse.Action) -> None:
        shown = default_text(action)
        if shown is not None:
            action = copy.copy(action)
            # help is %-formatted by argparse, so a literal % in a default must be doubled.
            action.help = f"{action.help or ''} (default: {shown.replace('%', '%%')})".lstrip()
        super().add_argument(action)


def default_text(action: argparse.Action) -> str | None:
    """How `--help` should show the action's default; None when it shows none (or already states one)."""
    default = action.default
    if not action.option_strings or default is None or default is False or default is argparse.SUPPRESS:
        return None
    if action.help is argparse.SUPPRESS or "default" in (action.help or "").lower():
        return None
    if isinstance(default, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
    return f"{default:g}" if isinstance(default, float) else str(default)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults, that takes no abbreviated flags and suggests the
    closest command, flag or choice for a mistyped one (`suggest.py`); sub-parsers of a Parser are Parsers too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", ShowDefaults)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # reported by the sub-command that was given them, with its usage
            target = suggest.chosen_subparser(self, parsed)
            target.error(suggest.unrecognized(extras, target))
        return parsed

    def _check_value(self, action: argparse.Action, value) -> None:
        suggest.check_choice(action, value)


_SHOWN = 40  # characters of a bad value quoted back: a flag can hold a pasted file


def _quoted(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def int_range(low: int, high: int | None = None, what: str = "an integer") -> Callable[[str], int]:
    """An integer in [low, high] (no upper bound when `high` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {_quoted(text)}") from None
        if value < low or (high is not None and value > high):
            bounds = f">= {low:,}" if high is None else f"from {low:,} to {high:,}"
            raise argparse.ArgumentTypeError(f"must be {what} {bounds}, got {_quoted(text)}")
        return value

    parse.__name__ = "integer"  # argparse names the type in "invalid <name> value" messages
    return parse


def float_range(
    low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """A finite number in the interval; NaN and infinities are always refused."""
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    interval = (
        f"> {_number(low)}"
        if high is None and low_open
        else (f">= {_number(low)}" if high is None else f"in {left}{_number(low)}, {_number(high)}{right}")
    )

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {_quoted(text)}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number {interval}, got {_quoted(text)}")
        below = value <= low if low_open else value < low
        above = high is not None and (value >= high if high_open else value > high)
        if below or above:
            raise argparse.ArgumentTypeError(f"must be a finite number {interval}, got {_quoted(text)}")
        return value

    parse.__name__ = "number"
    return parse


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


# The largest count any "how many" flag takes: beyond it a typo, never an intention.
MAX_COUNT = 1_000_000

positive_int = int_range(1, MAX_COUNT, "a positive integer")
non_negative_int = int_range(0, MAX_COUNT, "an integer")
seed = int_range(0, MAX_SEED, "a seed")
port = int_range(0, 65_535, "a TCP port")
fraction = float_range(0.0, 1.0, high_open=True)
positive_float = float_range(0.0, low_open=True)
non_negative_float = float_range(0.0)


def shape(text: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like 28,28,1, got {_quoted(text)}") from None
    if len(parts) != 3 or min(parts) < 1 or max(parts) > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be three integers H,W,C from 1 to {MAX_COUNT:,}, got {_quoted(text)}")
    return parts


def add_data_options(p: argparse.ArgumentParser, default: str | None = "mnist-5k") -> None:
    p.add_argument(
        "--data",
        default=default,
        help="a file, folder, built-in name (mnist-5k, digits) or named dataset (convscope datasets)",
    )
    p.add_argument("--class-names", help="ABCDEFGHIJ (one character per class) or comma,separated,names")
    p.add_argument("--layout", choices=["NHWC", "NCHW", "NHW", "HWN", "HWCN"], help="override layout detection")
    p.add_argument(
        "--image-size", type=int_range(1, 8192, "a side in pixels"), help="resize image-folder images to this size"
    )
    p.add_argument("--channels", type=int, choices=[1, 3], help="1 = grayscale, 3 = RGB (image folders)")


def data_kwargs(args: argparse.Namespace) -> dict:
    return {
        "class_names": args.class_names,
        "layout": args.layout,
        "image_size": args.image_size,
        "channels": args.channels,
    }


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=positive_int,
        help="torch threads (default: the cores other processes leave idle; see the README)",
    )


def add_framing_options(p: argparse.ArgumentParser) -> None:
    """--invert and --framing: overrides of the run's learned input contract (the server's query parameters)."""
    p.add_argument(
        "--invert",
        choices=["auto", "true", "false"],
        default="auto",
        help="auto: invert images whose background is the opposite of the training images'",
    )
    p.add_argument(
        "--framing",
        choices=["auto", "fill", "fit", "none"],
        default="auto",
        help="auto: crop and frame the ink as the training images are framed (the run's input contract)",
    )
