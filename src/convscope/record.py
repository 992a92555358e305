"""The run record: what a run directory's JSON files hold, as dataclasses written and read here only.

    config.json        `RunConfig`: the data (`DataRecord`), the model, the fit (`FitRecord`), and what
                       `convscope train` was asked (recipe, settings, versions)
    metrics.json       `Metrics`: the test evaluation, how training ended, how long it took
    architecture.json  `Architecture`: the spec, the input and its classes, the scaling statistics

A `--resume` state file keeps a `ResumeKey` (what a resumed epoch must find unchanged).

`to_dict` writes the keys convscope has always written, so runs saved by earlier versions still
load; reading (`read_record`, `Architecture.read`) checks every field a reader formats or indexes,
because a run directory is a file a user may have edited or copied: a field that is off is one
sentence naming the file and the field. Nothing here imports torch or the training code: `fit`
writes its part of the record, `runs.py` the rest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checks import cut, quote
from .errors import UserError
from .i18n import N_, _

if TYPE_CHECKING:
    from .data.dataset import Dataset

ARCHITECTURE_FORMAT = "convscope-architecture/1"


@dataclass(frozen=True)
class Split:
    """How the test split was made: a file's own (`predefined`), or stratified with `test_split` and `seed`."""

    predefined: bool
    test_split: float | None
    seed: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"predefined_split": self.predefined, "test_split": self.test_split, "split_seed": self.seed}


@dataclass(frozen=True)
class DataRecord:
    """What a model was trained on: config.json's "data" (and `TrainedModel.data` after `fit`)."""

    source: str | None
    class_names: list[str]
    input_shape: list[int]
    train_size: int  # fit's: after the validation cut; a run's config.json: before it
    validation_size: int | None = None  # fit's: the images validation held out (None: not recorded)
    test_size: int | None = None
    split: Split | None = None
    reading: dict[str, Any] | None = None  # layout, image_size, channels: how `convscope train` read the files

    @classmethod
    def of_fit(cls, train: Dataset, validation: Dataset | None) -> DataRecord:
        """The record `fit` keeps: its training and validation images, and the test split `Dataset.split` made."""
        info = train.split_info or {}
        split = Split(info["predefined_split"], info["test_split"], info["split_seed"]) if info else None
        return cls(
            train.source,
            list(train.class_names),
            list(train.input_shape),
            len(train),
            len(validation) if validation is not None else 0,
            info.get("test_size"),
            split,
        )

    def before_cut(self, test_size: int | None) -> DataRecord:
        """As a run's config.json counts the training images: before the validation cut, as `convscope train`
        writes it, so that a report's counts agree with its per-class table."""
        kept = self.test_size if test_size is None else test_size
        total = self.train_size + (self.validation_size or 0)
        return DataRecord(
            self.source, self.class_names, self.input_shape, total, self.validation_size, kept, self.split
        )

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"source": self.source, "class_names": list(self.class_names)}
        record.update(self.reading or {})
        record["input_shape"] = list(self.input_shape)
        if self.validation_size is not None:  # fit's record: its training and validation counts side by side
            record.update(train_size=self.train_size, validation_size=self.validation_size)
        record.update(self.split.to_dict() if self.split is not None else {})
        record["train_size"] = self.train_size  # after the split, as `convscope train` writes it (if not there yet)
        if self.test_size is not None:
            record["test_size"] = self.test_size
        return record


@dataclass(frozen=True)
class FitRecord:
    """How `fit` trained: config.json's "fit" (and `TrainedModel.config`)."""

    settings: dict[str, Any]  # `FitSettings`' fields, by name
    precision: str  # resolved: fp32 or bf16
    device: str
    early_stopping: dict[str, Any] | None  # `EarlyStopping.settings()`
    threads: dict[str, Any]  # `ThreadGovernor.stop()`'s record
    world_size: int | None = None  # distributed runs only

    def to_dict(self) -> dict[str, Any]:
        record = _after_settings(self)
        if self.world_size is None:
            del record["world_size"]
        return record


@dataclass(frozen=True)
class ResumeKey:
    """What a resumed epoch must find unchanged (a state file's "fit", compared key by key by `read_state`)."""

    settings: dict[str, Any]  # `FitSettings`' fields, by name
    precision: str
    world_size: int
    train_size: int  # after the validation cut
    validation_size: int

    def to_dict(self) -> dict[str, Any]:
        return _after_settings(self)


def _after_settings(record: FitRecord | ResumeKey) -> dict[str, Any]:
    """The settings' fields, then the record's own, in one flat object (as config.json and state files hold them)."""
    return {**record.settings, **{f.name: getattr(record, f.name) for f in fields(record) if f.name != "settings"}}


@dataclass(frozen=True)
class RunConfig:
    """config.json: the data, the model (`name` and where it came from), and what `convscope train` was asked
    (`recipe`, `settings`, `versions`; None for runs saved from Python). `save_run` adds the fit."""

    data: DataRecord
    model_name: str
    model_source: str
    recipe: str | None = None
    settings: dict[str, Any] | None = None
    versions: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "data": self.data.to_dict(),
            "model": {"name": self.model_name, "source": self.model_source},
        }
        optional = {"recipe": self.recipe, "settings": self.settings, "versions": self.versions}
        record.update({k: v for k, v in optional.items() if v is not None})
        return record


@dataclass(frozen=True)
class Metrics:
    """metrics.json: the test evaluation (when there was one), the epochs and how training ended, its time."""

    epochs_run: int
    ending: dict[str, Any]  # `History.ending()`: best and kept epoch, early stop, interruption, resume
    train_seconds: float
    evaluation: dict[str, Any] = field(default_factory=dict)  # `EvaluationResult.metrics()`

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.evaluation,
            "epochs_run": self.epochs_run,
            **self.ending,
            "train_seconds": round(self.train_seconds, 3),
        }


@dataclass(frozen=True)
class Architecture:
    """architecture.json: enough to rebuild the network and feed it images as training did."""

    spec: dict[str, Any]
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    scaler: dict[str, float]  # {minimum, maximum}
    input_contract: dict[str, Any] | None = None  # how new pictures are framed; None in runs made before contracts

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        record = {
            "format": ARCHITECTURE_FORMAT,
            "spec": self.spec,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "scaler": self.scaler,
        }
        if self.input_contract is not None:
            record["input_contract"] = self.input_contract
        return record

    @classmethod
    def read(cls, file: Path) -> Architecture:
        """architecture.json, with every field the loaders use checked for presence and type."""
        arch = read_mapping(file)
        if arch.get("format") != ARCHITECTURE_FORMAT:
            raise UserError(
                _("{file}: unknown format {quote}, expected {ARCHITECTURE_FORMAT}.").format(
                    file=file, quote=quote(arch.get("format")), ARCHITECTURE_FORMAT=ARCHITECTURE_FORMAT
                )
            )
        missing = [k for k in ("spec", "input_shape", "num_classes", "class_names", "scaler") if k not in arch]
        if missing:
            raise UserError(
                _("{file}: the run's architecture lacks {choices}; the run directory is damaged.").format(
                    file=file, choices=", ".join(missing)
                )
            )
        for key, (test, sentence) in _ARCHITECTURE_FIELDS.items():
            if not test(arch[key], arch):
                raise UserError(_(sentence).format(file=file, quote=quote(arch[key]), classes=arch["num_classes"]))
        return cls(
            arch["spec"],
            tuple(arch["input_shape"]),
            tuple(arch["class_names"]),
            arch["scaler"],
            arch.get("input_contract"),
        )


def differences(
    then: Mapping[str, Any], now: Mapping[str, Any], names: Iterable[str], show: Callable[[Any], str] = repr
) -> list[str]:
    """'name=X then, Y now' for every one of `names` whose value differs between two records of settings
    (a run's saved settings against a resume's, a state file's fit against this fit's)."""
    return [
        f"{name}={show(then.get(name))} then, {show(now.get(name))} now"
        for name in names
        if then.get(name) != now.get(name)
    ]


def is_count(value: Any) -> bool:
    return is_int(value) and 1 <= value <= 2**31 - 1


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_range(pair: Any) -> bool:
    """[low, high] of finite numbers with low < high, whose span float32 (the model's arithmetic) still holds:
    scaling divides by it, so [-1e300, 1e300] or [0, 1e-300] would turn every pixel into inf or NaN."""
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(is_finite(v) for v in pair)):
        return False
    import numpy as np  # here: the settings import this module, and `convscope --help` loads no numpy

    with np.errstate(over="ignore"):
        low, high = np.float32(pair[0]), np.float32(pair[1])
        span = high - low
    return bool(np.isfinite(span) and span > 0)


def is_int(value: Any) -> bool:
    """A whole number as JSON holds one (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_scaler(scaler: Any) -> bool:
    low, high = (scaler.get("minimum"), scaler.get("maximum")) if isinstance(scaler, dict) else (None, None)
    return isinstance(scaler, dict) and set(scaler) == {"minimum", "maximum"} and is_range((low, high))


# architecture.json's fields, each with its test (the value, and the whole file) and the sentence when it fails.
_ARCHITECTURE_FIELDS: dict[str, tuple[Callable[[Any, dict], bool], str]] = {
    "input_shape": (
        lambda v, _arch: isinstance(v, list) and len(v) in (1, 3) and all(is_count(n) for n in v),
        N_("{file}: 'input_shape' must be [H, W, C] of positive integers, got {quote}."),
    ),
    "num_classes": (
        lambda v, _arch: is_count(v) and v >= 2,
        N_("{file}: 'num_classes' must be an integer of at least 2, got {quote}."),
    ),
    "class_names": (
        lambda v, arch: isinstance(v, list) and len(v) == arch["num_classes"] and all(isinstance(n, str) for n in v),
        N_("{file}: 'class_names' must be {classes} names, got {quote}."),
    ),
    "scaler": (
        lambda v, _arch: _is_scaler(v),
        N_("{file}: 'scaler' must be {{minimum, maximum}} with finite minimum < maximum, got {quote}."),
    ),
}

# The fields of config.json and metrics.json that readers format or index, and what they must hold.
_RECORD_NUMBERS = ("train_seconds", "test_accuracy", "test_loss", "epochs_run")
_RECORD_MAPPINGS = ("data", "versions", "fit", "model", "imported")
_RECORD_BOUNDS = {"test_accuracy": (0.0, 1.0), "test_loss": (0.0, math.inf), "train_seconds": (0.0, math.inf)}
# Fields inside config.json's sections that the report computes with: (section, key) -> what they must be
# (null is allowed: readers fall back to a dash).
_RECORD_NESTED: dict[tuple[str, str], tuple[str, Callable[[Any], bool]]] = {
    ("data", "train_size"): (N_("a whole number >= 0"), lambda v: is_int(v) and v >= 0),
    ("data", "test_size"): (N_("a whole number >= 0"), lambda v: is_int(v) and v >= 0),
    ("data", "source"): (N_("text"), lambda v: isinstance(v, str)),
    ("fit", "batch_size"): (N_("a whole number >= 1"), lambda v: is_int(v) and v >= 1),
    ("fit", "epochs"): (N_("a whole number >= 1"), lambda v: is_int(v) and v >= 1),
    ("fit", "validation_split"): (N_("a number in [0, 1)"), lambda v: is_finite(v) and 0 <= v < 1),
    ("fit", "lr"): (N_("a finite number"), is_finite),
    ("fit", "precision"): (N_("text"), lambda v: isinstance(v, str)),
}
_RECORD_EPOCHS = ("best_epoch", "weights_epoch")
_RECORD_FLAGS = ("stopped_early", "interrupted")


def read_record(path: Path) -> dict[str, Any]:
    """config.json or metrics.json of a run ({} when absent), with the fields readers use type-checked."""
    if not path.is_file():
        return {}
    record = read_mapping(path)
    for key, value in record.items():
        if value is None:
            if key in _RECORD_MAPPINGS:
                record[key] = {}  # null and {} say the same: nothing recorded (readers index these)
            continue
        ok = (
            (key not in _RECORD_NUMBERS or is_finite(value))
            and (key not in _RECORD_MAPPINGS or isinstance(value, dict))
            and (key not in _RECORD_EPOCHS or (is_int(value) and value >= 0))
            and (key not in _RECORD_FLAGS or isinstance(value, bool))
            and (key not in _RECORD_BOUNDS or _RECORD_BOUNDS[key][0] <= value <= _RECORD_BOUNDS[key][1])
        )
        if not ok:
            raise UserError(
                _(
                    "{path}: '{key}' holds {quote}, which convscope never writes there; the run directory is damaged."
                ).format(path=path, key=key, quote=quote(value))
            )
    for (section, key), (expected, test) in _RECORD_NESTED.items():
        value = record.get(section, {}).get(key)
        if value is not None and not test(value):
            raise UserError(
                _("{path}: '{section}.{key}' must be {expected}, got {value}; the run directory is damaged.").format(
                    path=path, section=section, key=key, expected=_(expected), value=quote(value)
                )
            )
    return record


def read_mapping(path: Path) -> dict[str, Any]:
    value = read_json(path)
    if not isinstance(value, dict):
        raise UserError(
            _("{path}: must hold a JSON object, got {kind}; the run directory is damaged.").format(
                path=path, kind=type(value).__name__
            )
        )
    return value


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, bad UTF-8, an int past 4,300 digits
        raise UserError(
            _("cannot read {path}: {text}.").format(path=path, text=cut(str(exc) or type(exc).__name__, 120))
        ) from None


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")
