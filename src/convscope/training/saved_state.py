"""The one reader of a `--resume` state file, every field checked against the run it claims to continue.

The file (`checkpoint.py` writes it) is read like any file a user may have edited, cut short or copied
from another run: each field is checked against the live model, optimizer, scheduler and callbacks
of the run being resumed *before* anything is restored. A field that is off is one `UserError`
sentence naming the file and the field; nothing on disk is touched, so the state stays as it was
for the user to fix or delete.

The checks are tables: `META` (the keys of the file's JSON), `CALLBACK_FIELDS` (each callback's
saved fields) and `GROUP_RANGES` (the optimizer's hyper-parameters); structures whose shape the
live objects define (scheduler state, optimizer groups, weights) are compared with those objects.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from ..checks import MAX_LR, cut, quote
from ..errors import UserError
from ..i18n import N_, _
from ..record import differences, is_int


@dataclass(frozen=True)
class SavedState:
    """A state file's content, checked: ready for the live objects' `load_state_dict`."""

    epoch: int
    stopped: bool
    rows: list[dict[str, float]]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    rng: dict[str, torch.Tensor]
    callbacks: list[dict[str, Any]]
    threads: int | None = None  # the fixed intra-op thread count the saved epoch ran with; None: adaptive
    device: str = "cpu"  # the device type the saved epoch ran on


class _Bad(Exception):
    """One field that is off: `read_state` turns it into a sentence naming the file."""

    def __init__(self, field: str, expected: str, got: object) -> None:
        super().__init__(field)
        self.field, self.expected, self.got = field, expected, got


# The keys of the file's JSON metadata: each must be present, and no other.
META = ("epoch", "stopped", "rows", "optimizer", "fit", "scheduler", "callbacks")
# Keys a state may hold besides those (files written before them lack them): name -> (what, test).
META_OPTIONAL: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "threads": (N_("a whole number >= 1 or null"), lambda v: v is None or (is_int(v) and v >= 1)),
    "device": (N_("a device type (cpu, cuda, mps)"), lambda v: v in ("cpu", "cuda", "mps")),
}

# Each optimizer's per-parameter tensors (its `state`), by class name.
OPTIMIZER_STATE = {"Adam": ("exp_avg", "exp_avg_sq", "step")}

# The optimizer's hyper-parameters that must lie in a range (name -> low, high, low_open, high_open).
GROUP_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "lr": (0.0, MAX_LR, False, False),  # 0 is reachable: a one-cycle schedule ends there
    "eps": (0.0, 1.0, True, False),
    "weight_decay": (0.0, math.inf, False, True),
    "betas": (0.0, 1.0, False, True),
}


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


# Each callback's saved fields: name -> (what it must be, the test). "weights" is a model's tensors, checked
# against the live model. A callback not listed here (one of the user's own) gets only the structural checks.
_Field = tuple[str, Callable[[Any], bool]]
_METRIC: _Field = (N_("a finite number or null"), lambda v: v is None or _is_number(v))
_COUNT: _Field = (N_("a whole number >= 0"), lambda v: is_int(v) and v >= 0)
CALLBACK_FIELDS: dict[str, dict[str, _Field | str]] = {
    "EarlyStopping": {
        "best": _METRIC,
        "best_epoch": (N_("a whole number >= 1 or null"), lambda v: v is None or (is_int(v) and v >= 1)),
        "wait": _COUNT,
        "best_state": "weights",
    },
    "ReduceLROnPlateau": {"best": _METRIC, "wait": _COUNT, "cooldown_counter": _COUNT},
    "ModelCheckpoint": {"best": _METRIC},
    "CSVLogger": {
        "text": (N_("text"), lambda v: isinstance(v, str)),
        "keys": (
            N_("a list of names or null"),
            lambda v: v is None or (isinstance(v, list) and all(isinstance(k, str) for k in v)),
        ),
        "header": (N_("true or false"), lambda v: isinstance(v, bool)),
    },
    "TensorBoard": {"next_epoch": _COUNT},
}


def read_state(
    path: Path, epoch: int, *, model, optimizer, scheduler, callbacks, fit_settings: dict[str, Any]
) -> SavedState:
    """The state file `path` (saved after `epoch`), checked field by field against the live objects.

    Raises one `UserError` naming the file and the field for anything a resume could not use as is.
    """
    directory = path.parent
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise UserError(
            _("{path}: the saved state cannot be read ({reason}); delete {directory} to start over.").format(
                path=path, reason=cut(str(exc), 120), directory=directory
            )
        ) from None
    try:
        meta = json.loads(header["state"])
    except (KeyError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, or an int past Python's digit limit
        raise UserError(
            _(
                "{path}: the saved state's metadata is not the JSON convscope writes ({reason}); delete {directory} to start over."
            ).format(path=path, reason=cut(str(exc) or type(exc).__name__, 80), directory=directory)
        ) from None
    try:
        return _checked(meta, tensors, epoch, model, optimizer, scheduler, callbacks, fit_settings, directory)
    except _Bad as bad:
        raise UserError(
            _(
                "{path}: '{field}' must be {expected}, got {got}; the saved state was left as it is "
                "(fix it, or delete {directory} to start over)."
            ).format(
                path=path, field=cut(bad.field, 80), expected=_(bad.expected), got=quote(bad.got), directory=directory
            )
        ) from None


def _checked(meta, tensors, epoch, model, optimizer, scheduler, callbacks, fit_settings, directory) -> SavedState:
    _keys("state", {k: v for k, v in meta.items() if k not in META_OPTIONAL} if isinstance(meta, dict) else meta, META)
    for key, (expected, test) in META_OPTIONAL.items():
        if key in meta and not test(meta[key]):
            raise _Bad(key, _(expected), meta[key])
    if not is_int(meta["epoch"]) or meta["epoch"] != epoch:
        raise _Bad("epoch", _("{epoch}, the epoch in the file's name").format(epoch=epoch), meta["epoch"])
    if not isinstance(meta["stopped"], bool):
        raise _Bad("stopped", _("true or false"), meta["stopped"])
    fit = meta["fit"]
    if not isinstance(fit, dict):
        raise _Bad("fit", _("the training settings (an object)"), fit)
    if fit != fit_settings:
        diff = differences(fit, fit_settings, sorted(set(fit) | set(fit_settings), key=str), lambda v: quote(v, 30))
        raise UserError(
            _("--resume: the saved state in {directory} was trained with other settings: {diff}.").format(
                directory=directory, diff=cut("; ".join(diff), 300)
            )
        )
    saved_callbacks = meta["callbacks"]
    if not (
        isinstance(saved_callbacks, list)
        and all(isinstance(c, dict) and set(c) == {"type", "state"} for c in saved_callbacks)
    ):
        raise _Bad("callbacks", _("a list of {{type, state}} objects"), saved_callbacks)
    names = [type(cb).__name__ for cb in callbacks]
    saved_names = [c["type"] for c in saved_callbacks]
    if names != saved_names:
        raise UserError(
            _("--resume: the saved state has the callbacks {saved}, this run has {names}.").format(
                saved=quote(saved_names, 120), names=names
            )
        )

    used: set[str] = set()

    def take(prefix: str) -> dict[str, torch.Tensor]:
        found = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        used.update(prefix + k for k in found)
        return found

    live_model = model.state_dict()
    weights = _weights("model.", take("model."), live_model)
    optimizer_state = _optimizer(meta["optimizer"], take, optimizer)
    if scheduler is None:
        if meta["scheduler"] is not None:
            raise _Bad("scheduler", _("null (this run's schedule is constant)"), meta["scheduler"])
        scheduler_state = None
    else:
        scheduler_state = meta["scheduler"]
        _like("scheduler", scheduler_state, scheduler.state_dict())
    rng = _rng(take("rng."))
    restored = [
        _callback(i, cb, saved["state"], take, tensors, used, live_model)
        for i, (cb, saved) in enumerate(zip(callbacks, saved_callbacks))
    ]
    rows = _rows(meta["rows"], epoch)
    unknown = sorted(set(tensors) - used)
    if unknown:
        raise _Bad(unknown[0], _("absent (convscope saves no tensor of that name)"), "a tensor")
    return SavedState(
        epoch,
        meta["stopped"],
        rows,
        weights,
        optimizer_state,
        scheduler_state,
        rng,
        restored,
        meta.get("threads"),
        meta.get("device", "cpu"),
    )


def _keys(field: str, value: object, expected: tuple[str, ...] | set[str]) -> None:
    """`value` is an object with exactly the keys `expected`."""
    if not isinstance(value, dict):
        raise _Bad(field, _("an object"), value)
    missing = [k for k in expected if k not in value]
    if missing:
        raise _Bad(f"{field}.{missing[0]}", _("present"), "nothing")
    extra = sorted(str(k) for k in set(value) - set(expected))
    if extra:
        raise _Bad(f"{field}.{extra[0]}", _("absent (convscope writes no such key)"), value[extra[0]])


def _tensor(field: str, value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`value` has the shape and dtype of `like`, and finite values where it holds real numbers."""
    if tuple(value.shape) != tuple(like.shape) or value.dtype != like.dtype:
        expected = _("a {dtype} tensor of shape {shape}").format(dtype=str(like.dtype)[6:], shape=tuple(like.shape))
        raise _Bad(field, expected, f"{str(value.dtype)[6:]} {tuple(value.shape)}")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise _Bad(field, _("finite numbers"), "NaN or infinity")
    return value


def _weights(prefix: str, saved: dict[str, torch.Tensor], live: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A model's tensors: exactly the live model's names, each of its shape and dtype."""
    missing = sorted(set(live) - set(saved))
    if missing:
        raise _Bad(prefix + missing[0], _("a tensor of this model"), "nothing")
    extra = sorted(set(saved) - set(live))
    if extra:
        raise _Bad(prefix + extra[0], _("absent (this model has no such tensor)"), "a tensor")
    return {k: _tensor(prefix + k, saved[k], live[k]) for k in live}


def _optimizer(saved: object, take, optimizer) -> dict[str, Any]:
    """Adam's groups (the live ones' keys, types and parameters; hyper-parameters in range) and per-parameter state."""
    _keys("optimizer", saved, ("param_groups", "state"))
    assert isinstance(saved, dict)
    live = optimizer.state_dict()
    groups = saved["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(live["param_groups"]):
        raise _Bad("optimizer.param_groups", _("a list of {n} groups").format(n=len(live["param_groups"])), groups)
    for g, (group, live_group) in enumerate(zip(groups, live["param_groups"])):
        field = f"optimizer.param_groups[{g}]"
        _like(field, group, live_group)
        for key, bounds in GROUP_RANGES.items():
            if key in group and not all(_inside(v, *bounds) for v in _as_list(group[key])):
                interval = f"{'(' if bounds[2] else '['}{bounds[0]:g}, {bounds[1]:g}{')' if bounds[3] else ']'}"
                raise _Bad(f"{field}.{key}", _("a number in {interval}").format(interval=interval), group[key])
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = saved["state"]
    if not isinstance(state, dict):
        raise _Bad("optimizer.state", _("an object"), state)
    names = OPTIMIZER_STATE.get(type(optimizer).__name__)
    amsgrad = any(group.get("amsgrad") for group in live["param_groups"])
    restored: dict[int, dict[str, Any]] = {}
    for key, plain in state.items():
        field = f"optimizer.state.{key}"
        if not (key.isdigit() and int(key) < len(params)):
            raise _Bad(field, _("the index of one of the {n} parameters").format(n=len(params)), key)
        if not isinstance(plain, dict) or not all(_is_number(v) or isinstance(v, bool) for v in plain.values()):
            raise _Bad(field, _("an object of finite numbers"), plain)
        param = params[int(key)]
        entry: dict[str, Any] = dict(plain)
        for name, value in take(f"optim.{key}.").items():
            like = torch.zeros((), dtype=value.dtype) if value.ndim == 0 else param.detach()
            entry[name] = _tensor(f"optim.{key}.{name}", value, like)
            if value.ndim == 0 and float(value) < 0:
                raise _Bad(f"optim.{key}.{name}", _("a number >= 0"), float(value))
        if names is not None:
            _keys(field, entry, {*names, *(["max_exp_avg_sq"] if amsgrad else [])})
            if entry["step"].is_floating_point() is False:
                raise _Bad(f"optim.{key}.step", _("a float32 number"), str(entry["step"].dtype))
        restored[int(key)] = entry
    return {"state": restored, "param_groups": groups}


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def _inside(value: float, low: float, high: float, low_open: bool, high_open: bool) -> bool:
    return (value > low if low_open else value >= low) and (value < high if high_open else value <= high)


def _like(field: str, value: object, template: object) -> None:
    """`value` has the structure of the live `template` (a scheduler's or an optimizer group's state):
    the same keys, list lengths and kinds, with finite numbers where the template holds numbers."""
    if isinstance(template, bool):
        ok = isinstance(value, bool)
        expected = _("true or false")
    elif isinstance(template, int):
        ok = is_int(value)
        expected = _("a whole number")
    elif isinstance(template, float):
        ok = _is_number(value)
        expected = _("a finite number")
    elif isinstance(template, str):
        ok = isinstance(value, str)
        expected = _("text")
    elif template is None:
        ok = value is None
        expected = "null"
    elif isinstance(template, (list, tuple)):
        if not isinstance(value, list) or len(value) != len(template):
            raise _Bad(field, _("a list of {n} values").format(n=len(template)), value)
        for i, (v, t) in enumerate(zip(value, template)):
            _like(f"{field}[{i}]", v, t)
        return
    elif isinstance(template, dict):
        _keys(field, value, set(template))
        assert isinstance(value, dict)
        for key in template:
            _like(f"{field}.{key}", value[key], template[key])
        return
    else:  # a value JSON cannot hold: the saved state must not replace it
        ok, expected = value == template, quote(template)
    if not ok:
        raise _Bad(field, expected, value)


def _rng(saved: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The torch, shuffler and (saved on a GPU) CUDA generator states, each accepted by a scratch generator."""
    cuda = sorted(k for k in saved if k.startswith("cuda"))
    _keys("rng", saved, {"torch", "shuffler", *cuda})
    for name, value in saved.items():
        device = "cpu"
        if name.startswith("cuda"):
            index = name[4:]
            if not (index.isdigit() and torch.cuda.is_available() and int(index) < torch.cuda.device_count()):
                raise _Bad(f"rng.{name}", _("absent (this machine has no such GPU)"), "a GPU generator state")
            device = f"cuda:{index}"
        if value.dtype != torch.uint8 or value.ndim != 1:
            raise _Bad(
                f"rng.{name}", _("a generator state (uint8 bytes)"), f"{str(value.dtype)[6:]} {tuple(value.shape)}"
            )
        try:  # the generator's own check: size, and an mt19937 state it can continue from
            torch.Generator(device=device).set_state(value)
        except RuntimeError as exc:
            raise _Bad(f"rng.{name}", _("a generator state torch accepts"), cut(str(exc), 80)) from None
    return saved


def _callback(i, cb, state, take, tensors, used, live_model) -> dict[str, Any]:
    """Callback `i`'s saved fields: the live callback's keys, each as its table says (`CALLBACK_FIELDS`)."""
    field = f"callbacks[{i}].state"
    _keys(field, state, set(cb.state_dict()))
    checks = CALLBACK_FIELDS.get(type(cb).__name__, {})
    restored: dict[str, Any] = {}
    for key, entry in state.items():
        where = f"{field}.{key}"
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise _Bad(where, _("one of {{value}}, {{tensor}} or {{tensors}}"), entry)
        if entry.get("tensor") is True:
            name = f"cb{i}.{key}"
            if name not in tensors:
                raise _Bad(name, _("a tensor in the file"), "nothing")
            used.add(name)
            value: Any = tensors[name]
        elif isinstance(entry.get("tensors"), list) and all(isinstance(n, str) for n in entry["tensors"]):
            found = take(f"cb{i}.{key}.")
            if sorted(found) != sorted(entry["tensors"]):
                raise _Bad(where, _("the tensors the file holds"), entry["tensors"])
            value = found
        elif "value" in entry:
            value = entry["value"]
        else:
            raise _Bad(where, _("one of {{value}}, {{tensor}} or {{tensors}}"), entry)
        check = checks.get(key)
        if isinstance(check, str):  # "weights": null, or the live model's tensors
            if isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values()):
                value = _weights(f"cb{i}.{key}.", value, live_model)
            elif value is not None:
                raise _Bad(where, _("null or the model's tensors"), value)
        elif check is not None:
            expected, test = check
            if not test(value):
                raise _Bad(where, _(expected), value)
        restored[key] = value
    return restored


def _rows(rows: object, epoch: int) -> list[dict[str, float]]:
    """The history so far: one row per epoch, numbered 1..epoch, each with the same finite numbers."""
    if not isinstance(rows, list) or len(rows) != epoch:
        raise _Bad("rows", _("a list of {n} history rows").format(n=epoch), rows)
    for i, row in enumerate(rows):
        field = f"rows[{i}]"
        if not isinstance(row, dict) or row.get("epoch") != i + 1 or not is_int(row.get("epoch")):
            raise _Bad(field, _("a row numbered {n}").format(n=i + 1), row)
        if set(row) != set(rows[0]) or "seconds" not in row:
            raise _Bad(
                field, _("the columns of the first row ({keys})").format(keys=", ".join(map(str, rows[0]))), sorted(row)
            )
        for key, value in row.items():
            if not _is_number(value) or (key == "seconds" and value < 0):
                raise _Bad(f"{field}.{key}", _("a finite number"), value)
    return rows
