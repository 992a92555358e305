"""Every sub-command's `--help` shows each option's default, and lists the presets from the registry."""

from __future__ import annotations

import argparse
import re

import pytest

from convscope.cli import main, parser
from convscope.models import PRESETS

SUBCOMMANDS = next(a for a in parser()._actions if a.dest == "command").choices


def option_blocks(help_text: str) -> dict[str, str]:
    """Each option's lines of a --help text, whitespace collapsed, under each of its option strings."""
    blocks: dict[str, str] = {}
    for block in re.split(r"\n(?=  -)", help_text):
        invocation = block.strip().split("\n")[0].split("  ")[0]  # "-h, --help" or "--random [N]"
        for option in re.findall(r"(?:^|, )(--?[\w-]+)", invocation):
            blocks[option] = " ".join(block.split())
    return blocks


def shown(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(shown(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def meaningful(action: argparse.Action) -> bool:
    return bool(action.option_strings) and action.default not in (None, False, argparse.SUPPRESS)


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_option_with_a_default_shows_it(command):
    sub = SUBCOMMANDS[command]
    blocks = option_blocks(sub.format_help())
    for action in filter(meaningful, sub._actions):
        block = blocks[action.option_strings[-1]]
        assert "default" in block, (command, block)
        if "default" not in (action.help or ""):  # the help states none itself: the formatter adds it
            assert f"(default: {shown(action.default)})" in block, (command, block)


@pytest.mark.parametrize(
    ("command", "option", "default"),
    [
        ("train", "--test-split", "0.2"),
        ("train", "--seed", "0"),
        ("train", "--min-delta", "0"),
        ("train", "--monitor", "val_loss"),
        ("train", "--data", "mnist-5k"),
        ("export", "--format", "onnx"),
        ("serve", "--port", "8000"),
        ("predict", "--top", "3"),
        ("sweep", "--patience", "3"),
    ],
)
def test_each_listed_default_is_shown_in_its_commands_help(command, option, default, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert f"(default: {default})" in option_blocks(capsys.readouterr().out)[option]


def test_unset_options_show_no_default():
    blocks = option_blocks(SUBCOMMANDS["train"].format_help())
    assert "(default: None)" not in SUBCOMMANDS["train"].format_help()
    assert "(default: False)" not in SUBCOMMANDS["train"].format_help()
    assert "default" not in blocks["--quiet"] and "default" not in blocks["--class-names"]
    # a help that states its own default is not told twice
    assert option_blocks(SUBCOMMANDS["serve"].format_help())["--host"].count("default") == 1


@pytest.mark.parametrize("command", ["summary", "train", "sweep"])
def test_preset_lists_come_from_the_registry(command):
    text = " ".join(SUBCOMMANDS[command].format_help().split())
    assert f"preset ({', '.join(PRESETS)})" in text and "fast" in PRESETS
