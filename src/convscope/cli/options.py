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
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from ..checks import MAX_COUNT, MAX_SEED, number_text
from ..i18n import LANGUAGES, N_, _
from ..models.presets import PRESETS
from ..settings_table import SETTINGS, Setting
from . import suggest


def presets() -> str:
    """The preset names, from the registry itself: a help text never lists a copy that falls behind."""
    return ", ".join(PRESETS)


class ShowDefaults(argparse.HelpFormatter):
    """Appends "(default: X)" to each option whose default means something and whose help does not state it.

    Unlike argparse.ArgumentDefaultsHelpFormatter, this also covers options without a help text, skips
    defaults that mean "not given" (None, False) and writes tuples as they are typed (28,28,1)."""

    def add_usage(self, usage, actions, groups, prefix=None) -> None:
        super().add_usage(usage, actions, groups, _("usage: ") if prefix is None else prefix)

    def start_section(self, heading: str | None) -> None:
        super().start_section(_section_heading(heading))

    def add_argument(self, action: argparse.Action) -> None:
        shown = default_text(action)
        if shown is not None:
            action = copy.copy(action)
            # help is %-formatted by argparse, so a literal % in a default must be doubled.
            suffix = _("(default: {value})").format(value=shown.replace("%", "%%"))
            action.help = f"{action.help or ''} {suffix}".lstrip()
        super().add_argument(action)


def default_text(action: argparse.Action) -> str | None:
    """How `--help` should show the action's default; None when it shows none (or already states one)."""
    default = action.default
    if not action.option_strings or default is None or default is False or default is argparse.SUPPRESS:
        return None
    if action.nargs == 0:  # an on/off flag: its default is "not given", whichever setting it turns off
        return None
    if action.help is argparse.SUPPRESS or _states_default(action.help or ""):
        return None
    if isinstance(default, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
    return f"{default:g}" if isinstance(default, float) else str(default)


def _states_default(text: str) -> bool:
    """Whether a help text already names its default, in English or in the language in force."""
    lowered = text.lower()
    return "default" in lowered or _("default") in lowered


def add_language_option(p: argparse.ArgumentParser) -> None:
    """--lang on a parser; main() reads it from argv before parsing (`language_asked`), so it is only shown and
    checked here. SUPPRESS: a sub-command's absent --lang leaves the top-level one alone."""
    p.add_argument(
        "--lang",
        choices=list(LANGUAGES),
        default=argparse.SUPPRESS,
        help=_("language of messages and reports (default: CONVSCOPE_LANG, else the locale, else en)"),
    )


def language_asked(argv: list[str]) -> str | None:
    """The value of the last --lang in argv (`--lang ko` or `--lang=ko`), before a `--`; None when absent."""
    asked = None
    for i, word in enumerate(argv):
        if word == "--":
            break
        if word == "--lang" and i + 1 < len(argv):
            asked = argv[i + 1]
        elif word.startswith("--lang="):
            asked = word.partition("=")[2]
    return asked


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults, that takes no abbreviated flags and suggests the
    closest command, flag or choice for a mistyped one (`suggest.py`); sub-parsers of a Parser are Parsers too.

    argparse's own words (usage, section headings, -h, its error sentences) come from Python's catalog, not
    ours, so a Parser says them through convscope's: `ShowDefaults` for the help page, `error` for mistakes.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", ShowDefaults)
        kwargs.setdefault("allow_abbrev", False)
        add_help = kwargs.pop("add_help", True)
        kwargs["add_help"] = False  # our own -h below, whose help text is translated
        super().__init__(*args, **kwargs)
        if add_help:
            self.add_argument("-h", "--help", action="help", help=_("show this help message and exit"))

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, _("{prog}: error: {message}").format(prog=self.prog, message=argparse_message(message)) + "\n")

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # reported by the sub-command that was given them, with its usage
            target = suggest.chosen_subparser(self, parsed)
            target.error(suggest.unrecognized(extras, target))
        return parsed

    def _check_value(self, action: argparse.Action, value) -> None:
        suggest.check_choice(action, value)


def _section_heading(heading: str | None) -> str | None:
    headings = {"options": _("options"), "positional arguments": _("positional arguments")}
    return headings.get(heading or "", heading)


# argparse's error sentences (Python 3.10-3.13), marked for the catalog; their %-fields are kept in translation.
ARGPARSE_SENTENCES = (
    N_("argument %(argument_name)s: %(message)s"),
    N_("the following arguments are required: %s"),
    N_("one of the arguments %s is required"),
    N_("unrecognized arguments: %s"),
    N_("not allowed with argument %s"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("invalid %(type)s value: %(value)r"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
)


_FIELD = re.compile(r"%(?:\((\w+)\))?[sr]")


def argparse_message(message: str) -> str:
    """An argparse error sentence in the language in force: matched against argparse's English templates, its
    fields (option names, values) carried into the translation; our own messages inside pass through `_` already."""
    for english in ARGPARSE_SENTENCES:
        names = [m.group(1) or f"_{i}" for i, m in enumerate(_FIELD.finditer(english))]
        pattern = "".join(
            re.escape(part) if i % 2 == 0 else "(.*?)"
            for i, part in enumerate(_FIELD.split(english))
            if part is not None
        )
        match = re.fullmatch(pattern, message, re.S)
        if match is None:
            continue
        values = dict(zip(names, match.groups()))
        if names and names[-1] == "message":
            values["message"] = argparse_message(values["message"])  # "argument --x: invalid choice: ..."
        return _filled(_(english), values)
    return message


def _filled(template: str, values: dict[str, str]) -> str:
    """`template`'s %-fields replaced by `values`: named ones by name, bare ones (`%s`) by position (`_0`, `_1`)."""
    positional = iter(v for k, v in values.items() if k.startswith("_"))
    return _FIELD.sub(lambda m: values[m.group(1)] if m.group(1) else next(positional), template)


_SHOWN = 40  # characters of a bad value quoted back: a flag can hold a pasted file


def _quoted(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def int_range(low: int, high: int | None = None, what: str = N_("an integer")) -> Callable[[str], int]:
    """An integer in [low, high] (no upper bound when `high` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                _("must be {what}, got {quoted}").format(what=_(what), quoted=_quoted(text))
            ) from None
        if value < low or (high is not None and value > high):
            bounds = f">= {low:,}" if high is None else _("from {low:,} to {high:,}").format(low=low, high=high)
            raise argparse.ArgumentTypeError(
                _("must be {what} {bounds}, got {quoted}").format(what=_(what), bounds=bounds, quoted=_quoted(text))
            )
        return value

    parse.__name__ = "integer"  # argparse names the type in "invalid <name> value" messages
    return parse


def float_range(
    low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """A finite number in the interval; NaN and infinities are always refused."""
    left = "(" if low_open else "["
    right = ")" if high_open else "]"

    def interval() -> str:  # worded when refused, in the language then in force
        if high is None:
            return f"> {number_text(low)}" if low_open else f">= {number_text(low)}"
        return _("in {interval}").format(interval=f"{left}{number_text(low)}, {number_text(high)}{right}")

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(_("must be a number, got {quoted}").format(quoted=_quoted(text))) from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                _("must be a finite number {interval}, got {quoted}").format(interval=interval(), quoted=_quoted(text))
            )
        below = value <= low if low_open else value < low
        above = high is not None and (value >= high if high_open else value > high)
        if below or above:
            raise argparse.ArgumentTypeError(
                _("must be a finite number {interval}, got {quoted}").format(interval=interval(), quoted=_quoted(text))
            )
        return value

    parse.__name__ = "number"
    return parse


positive_int = int_range(1, MAX_COUNT, N_("a positive integer"))
non_negative_int = int_range(0, MAX_COUNT, N_("an integer"))
seed = int_range(0, MAX_SEED, N_("a seed"))
port = int_range(0, 65_535, N_("a TCP port"))
fraction = float_range(0.0, 1.0, high_open=True)
positive_float = float_range(0.0, low_open=True)
non_negative_float = float_range(0.0)


def shape(text: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("must look like 28,28,1, got {quoted}").format(quoted=_quoted(text))
        ) from None
    if len(parts) != 3 or min(parts) < 1 or max(parts) > MAX_COUNT:
        raise argparse.ArgumentTypeError(
            _("must be three integers H,W,C from 1 to {MAX_COUNT:,}, got {quoted}").format(
                MAX_COUNT=MAX_COUNT, quoted=_quoted(text)
            )
        )
    return parts


def setting_type(setting: Setting) -> Callable[[str], object] | None:
    """The argparse type that refuses what `setting.check` refuses, in argparse's one-line form."""
    if setting.choices is not None:
        return None if setting.kind is str else setting.kind  # argparse's choices do the refusing
    if setting.kind is int and setting.low is not None:
        high = None if setting.high is None else int(setting.high)
        return int_range(int(setting.low), high, setting.noun)
    if setting.kind is float and setting.low is not None:
        return float_range(setting.low, setting.high, low_open=setting.low_open, high_open=setting.high_open)
    return None


def add_setting(p: argparse.ArgumentParser, name: str, **overrides) -> None:
    """The option of the setting `name` (`settings_table.TRAIN`): its flag, type, choices, default and help;
    `overrides` replace any of those where a command differs (sweep's own defaults, say)."""
    setting = SETTINGS[name]
    options: dict = {"help": _(setting.help) if setting.help else None, "default": setting.default}
    if setting.kind is bool:
        # A flag that turns a setting on, or (--quiet, --no-report) off; when absent it leaves the setting alone.
        options.update(action="store_false" if setting.default else "store_true", dest=setting.name)
        if setting.default:
            options["default"] = argparse.SUPPRESS
    else:
        options.update(type=setting_type(setting), metavar=setting.metavar)
        if setting.choices is not None:
            options["choices"] = list(setting.choices)
    options.update(overrides)
    p.add_argument(setting.option, **{k: v for k, v in options.items() if v is not None or k == "default"})


DATA_SETTINGS = ("data", "class_names", "layout", "image_size", "channels")


def add_data_options(p: argparse.ArgumentParser, default: str | None = "mnist-5k") -> None:
    add_setting(p, "data", default=default)
    for name in DATA_SETTINGS[1:]:
        add_setting(p, name)


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
        help=_("torch threads (default: the cores other processes leave idle; see the README)"),
    )


def add_framing_options(p: argparse.ArgumentParser) -> None:
    """--invert and --framing: overrides of the run's learned input contract (the server's query parameters)."""
    p.add_argument(
        "--invert",
        choices=["auto", "true", "false"],
        default="auto",
        help=_("auto: invert images whose background is the opposite of the training images'"),
    )
    p.add_argument(
        "--framing",
        choices=["auto", "fill", "fit", "none"],
        default="auto",
        help=_("auto: crop and frame the ink as the training images are framed (the run's input contract)"),
    )
