"""Mistyped commands, flags and choices: the sub-command's own usage and a "did you mean" from difflib.

`convscope trian` suggests `train`; `convscope train --epohcs 2` prints `train`'s usage (argparse would print
the top-level one, since the unknown flag travels up from the sub-parser) and suggests `--epochs`.
Abbreviations are off in every parser (`allow_abbrev=False`): `--epoch 2` would otherwise stand for
`--epochs 2` until another flag starting with `--epoch` is added, and then break every script using it.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable

from ..i18n import _


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `word` was most likely meant to be, or None when none is close."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """The closest candidate as a suffix for argparse's message, or "" when none is close."""
    match = closest(word, candidates)
    return " " + _("(did you mean {choice}?)").format(choice=match) if match else ""


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings]


def unrecognized(extras: list[str], parser: argparse.ArgumentParser) -> str:
    """argparse's "unrecognized arguments" message, with a suggestion for each unknown flag."""
    # Compared without their dashes, which every flag shares and which would make any two look alike.
    known = {option.lstrip("-"): option for option in option_strings(parser)}
    hints = []
    for word in extras:
        if word.startswith("-") and len(word) > 1:
            match = closest(word.split("=", 1)[0].lstrip("-"), known)
            if match is not None:
                hints.append(_("(did you mean {choice}?)").format(choice=known[match]))
    text = _("unrecognized arguments: {arguments}").format(arguments=" ".join(extras))
    return " ".join([text, *hints])


def chosen_subparser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The sub-command's parser that `args` went through, or `parser` itself."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if name in action.choices:
                return chosen_subparser(action.choices[name], args)
    return parser


def check_choice(action: argparse.Action, value) -> None:
    """argparse's check of a value against `choices`, with the closest choice suggested."""
    if action.choices is None or value in action.choices:
        return
    names = [str(choice) for choice in action.choices]
    message = _("invalid choice: {value} (choose from {choices})").format(value=repr(value), choices=", ".join(names))
    raise argparse.ArgumentError(action, message + did_you_mean(str(value), names))
