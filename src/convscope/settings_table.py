"""The one table of training settings: what each setting of `convscope train` / `cs.train` is called, what
type and values it takes, its default and its help text.

Everything that says what a valid setting is comes from here (as scikit-learn's `_parameter_constraints`):
the checks of `TrainSettings`, `FitSettings` and `SweepSettings` (`check`), the options of `convscope train`
and `convscope sweep` (`cli/options.add_setting`) and the README's option list (`markdown_table`), so a value
gets one answer everywhere. Adding a setting is a row here and a field of `TrainSettings`.

It sits under every layer that uses it and imports only the bottom modules: the CLI reads it for `--help`
without importing torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .checks import MAX_COUNT, MAX_LR, MAX_SEED, check_int, check_number, number_text, quote
from .errors import UserError
from .i18n import N_, _

MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")
PRECISIONS = ("fp32", "bf16", "auto")  # auto: bf16 where the hardware has it, else fp32
SCHEDULES = ("constant", "one-cycle")
RECIPE_NAMES = ("keras", "fast")  # the keys of `training.recipes.RECIPES` (a test keeps them equal)
LAYOUTS = ("NHWC", "NCHW", "NHW", "HWN", "HWCN")


@dataclass(frozen=True)
class Setting:
    """One setting. `kind` is int, float, bool or str; a number lies in the interval from `low` to `high`
    (open at an end when `low_open` / `high_open`; no bound where None); `choices` lists every value allowed.
    `help` is English, marked for the catalog and translated where it is shown; `noun` is how the CLI names
    an integer setting in its refusal ("must be a positive integer from 1 to 1,000,000")."""

    name: str
    kind: type = str
    default: Any = None
    help: str | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    noun: str = N_("an integer")
    flag: str | None = None  # the CLI's option when it is not --name-with-dashes
    metavar: str | None = None

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def check(self, value: object, *, optional: bool = True) -> None:
        """Refuse a value this setting cannot take, with the sentence every entry point gives.
        None is "not given" (a `TrainSettings` value left to the recipe) unless `optional` is False."""
        if value is None and optional:
            return
        if self.kind is bool:
            if not isinstance(value, bool):
                raise UserError(
                    _("{name} must be True or False, got {value}.").format(name=self.name, value=quote(value))
                )
        elif self.kind is int:
            check_int(self.name, value, _whole(self.low), _whole(self.high))
        elif self.kind is float:
            check_number(self.name, value, self.low, self.high, low_open=self.low_open, high_open=self.high_open)
        if self.choices is not None and value not in self.choices:
            raise UserError(
                _("{name} must be one of {choices}, got {value}.").format(
                    name=self.name, choices=", ".join(map(str, self.choices)), value=quote(value)
                )
            )

    def values_text(self) -> str:
        """What the setting takes, in symbols and words for the README: 'integer in [1, 1,000,000]'."""
        if self.choices is not None:
            return ", ".join(f"`{c}`" for c in self.choices)
        if self.kind is bool:
            return f"flag: `{self.name}={not self.default}`"
        if self.kind is str:
            return "text"
        noun = "integer" if self.kind is int else "number"
        if self.low is None or self.high is None:  # every number in the table has a lower bound
            return noun if self.low is None else f"{noun} {'>' if self.low_open else '>='} {number_text(self.low)}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{noun} in {left}{number_text(self.low)}, {number_text(self.high)}{right}"


def _whole(bound: float | None) -> int | None:
    return None if bound is None else int(bound)


def _count(name: str, low: int, noun: str, help: str | None = None, **more: Any) -> Setting:
    return Setting(name, int, help=help, low=low, high=MAX_COUNT, noun=noun, **more)


def _fraction(name: str, help: str | None = None, **more: Any) -> Setting:
    return Setting(name, float, help=help, low=0.0, high=1.0, high_open=True, **more)


# In the order of `convscope train --help`. A default of None means: from the recipe (training settings) or
# unset; the help says which.
TRAIN: tuple[Setting, ...] = (
    Setting(
        "data",
        default="mnist-5k",
        help=N_("a file, folder, built-in name (mnist-5k, digits) or named dataset (convscope datasets)"),
    ),
    Setting("class_names", help=N_("ABCDEFGHIJ (one character per class) or comma,separated,names")),
    Setting("layout", choices=LAYOUTS, help=N_("override layout detection")),
    Setting(
        "image_size",
        int,
        low=1,
        high=8192,
        noun=N_("a side in pixels"),
        help=N_("resize image-folder images to this size"),
    ),
    Setting("channels", int, choices=(1, 3), help=N_("1 = grayscale, 3 = RGB (image folders)")),
    Setting("model", default="cnn", help=N_("preset ({presets}) or a .yaml/.json spec")),
    Setting(
        "recipe",
        choices=RECIPE_NAMES,
        help=N_("a bundle of the settings below (default: keras, or fast for --model fast)"),
    ),
    _count("epochs", 1, N_("a positive integer"), N_("at most this many epochs (keras recipe: 20)")),
    _count("batch_size", 1, N_("a positive integer"), N_("keras recipe: 32")),
    # Adam diverges to NaN long before MAX_LR: a larger rate is a typo, from the API as from the CLI.
    Setting(
        "lr",
        float,
        low=0.0,
        high=MAX_LR,
        low_open=True,
        help=N_("Adam learning rate, the peak of a one-cycle schedule (keras recipe: 1e-3)"),
    ),
    _count("patience", 0, N_("an integer"), N_("early-stopping patience in epochs (keras recipe: 3)")),
    Setting("min_delta", float, default=0.0, low=0.0),
    Setting("monitor", default="val_loss", choices=MONITORS),
    _fraction("validation_split", N_("keras recipe: 0.2")),
    _fraction("test_split", default=0.2),
    Setting("seed", int, default=0, low=0, high=MAX_SEED, noun=N_("a seed")),
    Setting("device", help=N_("auto (CUDA when available), cpu, cuda, cuda:1")),
    Setting(
        "precision",
        choices=PRECISIONS,
        help=N_("bf16 autocast; auto = bf16 where the hardware has it (keras recipe: fp32)"),
    ),
    Setting("schedule", choices=SCHEDULES, help=N_("learning rate over the run (keras recipe: constant)")),
    _fraction("label_smoothing", N_("share of the target spread over all classes (keras recipe: 0)")),
    Setting(
        "random_shift",
        int,
        low=0,
        high=1024,
        noun=N_("a number of pixels"),
        metavar="PIXELS",
        help=N_("move each training image by up to this many pixels, fresh every epoch (keras recipe: 0)"),
    ),
    _count(
        "reduce_lr_patience",
        0,
        N_("an integer"),
        N_(
            "ReduceLROnPlateau: multiply the learning rate by --reduce-lr-factor after N epochs without improvement of --monitor (default: off)"
        ),
        metavar="N",
    ),
    _fraction("reduce_lr_factor", N_("see --reduce-lr-patience"), default=0.1),
    Setting("tensorboard", metavar="DIR", help=N_("write TensorBoard logs (per-epoch scalars) into DIR")),
    Setting("out", help=N_("run directory (default runs/<timestamp>-<model>)")),
    Setting(
        "resume",
        bool,
        default=False,
        help=N_("continue the run --out from its last completed epoch (same command, same result)"),
    ),
    Setting(
        "nproc",
        int,
        default=1,
        low=1,
        high=256,
        noun=N_("a number of processes"),
        help=N_(
            "data-parallel processes on this machine (DDP: gloo on CPU, NCCL on CUDA); for several machines launch with torchrun -m convscope train instead"
        ),
    ),
    _count(
        "threads", 1, N_("a positive integer"), N_("torch threads (default: the idle cores, adjusted while training)")
    ),
    Setting(
        "stream",
        bool,
        default=False,
        help=N_("read a .npy file or picture folder batch by batch instead of loading it (data larger than memory)"),
    ),
    # The API's names are positive (Keras' `verbose`); the CLI's flags turn them off.
    Setting(
        "report", bool, default=True, flag="--no-report", help=N_("do not write report.html into the run directory")
    ),
    Setting("verbose", bool, default=True, flag="--quiet", help=N_("print only the run directory")),
)

SETTINGS: dict[str, Setting] = {s.name: s for s in TRAIN}


def check_settings(values: Mapping[str, object], *, optional: bool = True) -> None:
    """Refuse the first value in `values` (setting name -> value) its row of the table does not allow."""
    for name, value in values.items():
        SETTINGS[name].check(value, optional=optional)


def markdown_table(rows: Iterable[Setting] = TRAIN, **fields: str) -> str:
    """The README's option list: one row per setting (flag, `cs.train` keyword, values, default, help in
    English); `fields` fill the help texts' placeholders ({presets})."""
    lines = ["| flag | keyword | values | default | what it does |", "|---|---|---|---|---|"]
    for s in rows:
        default = "" if s.default is None else f"`{s.default}`"
        what = (s.help or "").format(**fields).replace("|", "\\|").replace("<", "\\<")  # markdown, not HTML
        lines.append(f"| `{s.option}` | `{s.name}` | {s.values_text()} | {default} | {what} |")
    return "\n".join(lines) + "\n"
