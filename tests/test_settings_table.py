"""One table says what every training setting takes, and every entry point gives its answer: each bound of
each setting (just inside, just outside, at both ends; the wrong type; NaN) is fed to `convscope train`,
`cs.train` and `cs.fit`, which must accept or refuse it alike, naming the same bounds. Refusals run the real
entry points (they refuse before any data is read); acceptance only builds the settings, nothing trains."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

import convscope as cs
from convscope import cli
from convscope.checks import number_text
from convscope.cli.options import presets
from convscope.cli.train import settings_from_args
from convscope.settings_table import RECIPE_NAMES, SETTINGS, TRAIN, Setting, markdown_table
from convscope.sweep import SweepSettings
from convscope.training.recipes import RECIPES
from convscope.training.settings import FitSettings, TrainSettings
from synthetic import SMALL_SPEC, tiny_dataset

ROOT = Path(__file__).resolve().parents[1]
FIT_NAMES = {f.name for f in fields(FitSettings)}
WRONG_TYPE = "abc"


def cases(setting: Setting) -> list[tuple[Any, bool]]:
    """(value, accepted) at each bound of `setting`, plus the wrong type (and NaN for a float)."""
    found: list[tuple[Any, bool]] = []
    if setting.choices is not None:
        found += [(choice, True) for choice in setting.choices]
        found.append((2 if setting.kind is int else "nope", False))
    elif setting.kind is int:
        low, high = int(setting.low), None if setting.high is None else int(setting.high)
        found += [(low, True), (low - 1, False)]
        found += [(high, True), (high + 1, False)] if high is not None else [(10**12, True)]
        found.append((low + 0.5, False))  # a whole number is asked for
    elif setting.kind is float:
        low, high = setting.low, setting.high
        inside, outside = math.nextafter(low, math.inf), math.nextafter(low, -math.inf)
        found += [(low, False), (inside, True)] if setting.low_open else [(low, True), (outside, False)]
        if high is None:
            found.append((1e300, True))
        else:
            inside, outside = math.nextafter(high, -math.inf), math.nextafter(high, math.inf)
            found += [(high, False), (inside, True)] if setting.high_open else [(high, True), (outside, False)]
        found.append((math.nan, False))
    if setting.kind in (int, float):
        found.append((WRONG_TYPE, False))
    return found


CHECKED = [s for s in TRAIN if s.kind in (int, float) or s.choices is not None]
CASES = [pytest.param(s, value, ok, id=f"{s.name}={value!r}") for s in CHECKED for value, ok in cases(s)]


def as_text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def cli_parse(argv: list[str]) -> tuple[bool, str]:
    """(accepted, the last line of stderr) from parsing alone, then building the settings: nothing runs."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = cli.parser().parse_args(argv)
        except SystemExit as exit:
            assert exit.code == 2
            return False, err.getvalue().strip().splitlines()[-1]
    try:
        settings_from_args(args)
    except cs.UserError as exc:
        return False, f"convscope train: error: {exc}"
    return True, ""


def cli_main(argv: list[str], capsys) -> tuple[int, str]:
    """The whole command in this process: its exit code and stderr (nothing is trained when it refuses)."""
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # argparse's refusals leave this way, as they leave the process
        code = exit.code
    return code, capsys.readouterr().err


def api_message(call) -> str | None:
    try:
        call()
    except cs.UserError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def model_and_data():
    data = tiny_dataset(n=16)
    return cs.build(SMALL_SPEC, data.input_shape, data.num_classes, seed=0), data


@pytest.mark.parametrize("setting, value, accepted", CASES)
def test_every_entry_point_gives_the_tables_answer(setting, value, accepted, tmp_path, capsys, model_and_data):
    # A value the table accepts would start a training run through cli.main / cs.train: only the settings are built.
    # The data named does not exist, so a wrongly accepted value fails at once (and the messages below tell).
    argv = ["train", "--data", str(tmp_path / "absent.npz"), f"{setting.option}={as_text(value)}"]
    cli_ok, cli_message = cli_parse(argv)
    assert cli_ok == accepted, (setting.name, value, cli_message)
    train_message = api_message(lambda: TrainSettings.of(None, {setting.name: value}))
    assert (train_message is None) == accepted, train_message
    if setting.name in FIT_NAMES:
        fit_message = api_message(lambda: FitSettings.of(None, {setting.name: value}))
        assert fit_message == train_message
    if accepted:
        return

    code, err = cli_main(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1] == cli_message
    assert cli_message.startswith(f"convscope train: error: argument {setting.option}: ")
    assert "Traceback" not in err and ". " not in cli_message  # one sentence
    out = tmp_path / "run"
    train_message = api_message(lambda: cs.train("digits", "mlp", out=out, verbose=False, **{setting.name: value}))
    assert train_message is not None and train_message.startswith(setting.name) and not out.exists()
    if setting.name in FIT_NAMES:
        model, data = model_and_data
        assert api_message(lambda: cs.fit(model, data, verbose=False, **{setting.name: value})) == train_message

    # The same bounds named by the CLI and the API; for numbers the very same sentence after the name.
    if type(value) is setting.kind and setting.choices is None:
        for bound in (setting.low, setting.high):
            if bound is not None:
                assert number_text(bound) in cli_message and number_text(bound) in train_message
    if setting.kind is float and type(value) is float:
        flag_said = cli_message.split(f"argument {setting.option}: ", 1)[1].replace("'", "")
        assert train_message == f"{setting.name} {flag_said}."


def test_the_headline_case_learning_rate_above_ten_is_refused_by_fit_too(model_and_data):
    model, data = model_and_data
    with pytest.raises(cs.UserError, match=r"^lr must be a finite number in \(0, 10\], got 100\.0\.$"):
        cs.fit(model, data, lr=100, verbose=False)
    with pytest.raises(cs.UserError, match=r"^lr must be a finite number in \(0, 10\], got 100\.0\.$"):
        SweepSettings(lr=100.0)


def test_sweep_settings_take_the_tables_bounds():
    for name, value in (("epochs", 0), ("patience", -1), ("validation_split", 1.0), ("seed", 2**32)):
        with pytest.raises(cs.UserError, match=f"^{name} must be"):
            SweepSettings(**{name: value})
    assert SweepSettings(epochs=1, validation_split=0.0).epochs == 1


def test_the_flags_quiet_and_no_report_turn_the_positive_settings_off():
    def settings(*flags: str) -> TrainSettings:
        return settings_from_args(cli.parser().parse_args(["train", *flags]))

    assert (settings().verbose, settings().report) == (True, True)
    assert (settings("--quiet").verbose, settings("--no-report").report) == (False, False)
    assert TrainSettings().verbose and TrainSettings().report
    with pytest.raises(TypeError, match="unexpected keyword argument 'quiet'"):
        TrainSettings.of(None, {"quiet": True})
    with pytest.raises(cs.UserError, match=r"^verbose must be True or False, got 'yes'\.$"):
        TrainSettings.of(None, {"verbose": "yes"})


def test_a_config_saved_by_0_1_0_still_reads_with_its_negative_names():
    old = {"data": "digits", "model": "mlp", "epochs": 2, "quiet": True, "no_report": False}
    settings = TrainSettings.from_config({"settings": old})
    assert (settings.verbose, settings.report, settings.epochs) == (False, True, 2)
    assert "quiet" not in settings.to_dict() and "no_report" not in settings.to_dict()
    assert TrainSettings.from_config({"settings": settings.to_dict()}) == settings


def test_the_dataclasses_the_cli_and_the_recipes_follow_the_table():
    assert {f.name for f in fields(TrainSettings)} == set(SETTINGS)
    assert {name: getattr(TrainSettings(), name) for name in SETTINGS} == {s.name: s.default for s in TRAIN}
    assert set(FIT_NAMES) <= set(SETTINGS) and tuple(RECIPES) == RECIPE_NAMES
    sub = next(a for a in cli.parser()._actions if a.dest == "command").choices["train"]
    options = {a.dest: a for a in sub._actions if a.option_strings and a.dest not in ("help", "config", "lang")}
    assert set(options) == set(SETTINGS)
    for setting in TRAIN:
        assert options[setting.name].option_strings == [setting.option]
        if setting.choices is not None:
            assert list(options[setting.name].choices) == list(setting.choices)


def test_the_readme_lists_what_the_table_says():
    spec = importlib.util.spec_from_file_location("readme_settings", ROOT / "tools" / "readme_settings.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    # `make readme-settings` (tools/readme_settings.py) writes the table between the markers when this fails.
    assert tool.with_table(text) == text
    assert markdown_table(presets=presets()) in text and "| `--lr` | `lr` | number in (0, 10] |" in text
