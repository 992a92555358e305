"""A damaged or hand-edited `--resume` state: one sentence naming the file and the field, exit 2, and the
state left on disk exactly as it was; an untouched state still resumes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from convscope.cli import main
from convscope.training.checkpoint import state_dir_for
from resume_states import STATE_FILE, copy_state, read, train_args, write


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def set_in(meta: dict, path: tuple, value) -> None:
    target = meta
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def drop_in(meta: dict, path: tuple) -> None:
    target = meta
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]


# (id, what is done to (meta, tensors), words the message must hold)
Damage = Callable[[dict, dict], None]
CASES: list[tuple[str, Damage, tuple[str, ...]]] = [
    ("lr not a number", lambda m, t: set_in(m, ("optimizer", "param_groups", 0, "lr"), "abc"), ("lr", "'abc'")),
    ("lr negative", lambda m, t: set_in(m, ("optimizer", "param_groups", 0, "lr"), -1.0), ("lr",)),
    ("lr NaN", lambda m, t: set_in(m, ("optimizer", "param_groups", 0, "lr"), float("nan")), ("lr",)),
    ("betas too short", lambda m, t: set_in(m, ("optimizer", "param_groups", 0, "betas"), [0.9]), ("betas",)),
    ("group params", lambda m, t: set_in(m, ("optimizer", "param_groups", 0, "params"), [0, 99]), ("params",)),
    ("no param groups", lambda m, t: set_in(m, ("optimizer", "param_groups"), []), ("param_groups",)),
    ("state index", lambda m, t: set_in(m, ("optimizer", "state", "9999"), {}), ("optimizer.state.9999",)),
    ("callbacks a string", lambda m, t: set_in(m, ("callbacks",), "x"), ("'callbacks'",)),
    ("callback entry without value", lambda m, t: set_in(m, ("callbacks", 0, "state", "wait"), {}), ("wait",)),
    ("callback wait text", lambda m, t: set_in(m, ("callbacks", 0, "state", "wait"), {"value": "2"}), ("wait",)),
    (
        "callback best NaN",
        lambda m, t: set_in(m, ("callbacks", 1, "state", "best"), {"value": float("nan")}),
        ("best",),
    ),
    ("callback key missing", lambda m, t: drop_in(m, ("callbacks", 1, "state", "cooldown_counter")), ("cooldown",)),
    ("epoch missing", lambda m, t: drop_in(m, ("epoch",)), ("epoch",)),
    ("epoch other", lambda m, t: set_in(m, ("epoch",), 7), ("epoch",)),
    ("stopped text", lambda m, t: set_in(m, ("stopped",), "no"), ("stopped",)),
    ("threads text", lambda m, t: set_in(m, ("threads",), "x"), ("threads",)),
    ("device unknown", lambda m, t: set_in(m, ("device",), "gpu9"), ("device",)),
    ("unknown key", lambda m, t: set_in(m, ("extra",), 1), ("extra",)),
    ("rows a number", lambda m, t: set_in(m, ("rows",), 3), ("rows",)),
    ("row loss infinite", lambda m, t: set_in(m, ("rows", 0, "loss"), float("inf")), ("rows[0].loss",)),
    ("row renumbered", lambda m, t: set_in(m, ("rows", 0, "epoch"), 5), ("rows[0]",)),
    ("scheduler text", lambda m, t: set_in(m, ("scheduler",), "x"), ("scheduler",)),
    ("scheduler step text", lambda m, t: set_in(m, ("scheduler", "last_epoch"), "4"), ("last_epoch",)),
    ("fit a list", lambda m, t: set_in(m, ("fit",), []), ("fit",)),
    (
        "weight shape",
        lambda m, t: t.update({k: torch.zeros(3) for k in t if k.startswith("model.") and "weight" in k}),
        ("model.",),
    ),
    (
        "weight dtype",
        lambda m, t: t.update({k: v.double() for k, v in t.items() if k.startswith("model.")}),
        ("float64",),
    ),
    (
        "weight NaN",
        lambda m, t: t.update(
            {
                k: torch.full_like(v, float("nan"))
                for k, v in t.items()
                if k.startswith("model.") and v.is_floating_point()
            }
        ),
        ("finite",),
    ),
    ("weight missing", lambda m, t: [t.pop(k) for k in [k for k in t if k.startswith("model.")][:1]], ("model.",)),
    ("extra tensor", lambda m, t: t.update({"stray": torch.zeros(1)}), ("stray",)),
    (
        "rng garbage",
        lambda m, t: t.update(
            {
                "rng.torch": torch.randint(
                    0, 256, t["rng.torch"].shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
                )
            }
        ),
        ("rng.torch",),
    ),
    ("rng short", lambda m, t: t.update({"rng.shuffler": torch.zeros(10, dtype=torch.uint8)}), ("rng.shuffler",)),
    ("rng float", lambda m, t: t.update({"rng.torch": torch.zeros(5056)}), ("rng.torch",)),
    (
        "adam moment shape",
        lambda m, t: t.update({k: torch.zeros(2) for k in t if k.startswith("optim.") and k.endswith("exp_avg")}),
        ("exp_avg",),
    ),
    ("adam step negative", lambda m, t: t.update({k: torch.tensor(-3.0) for k in t if k.endswith(".step")}), ("step",)),
    (
        "best weights a value",
        lambda m, t: set_in(m, ("callbacks", 0, "state", "best_state"), {"value": {"a": 1}}),
        ("best_state",),
    ),
    (
        "best weights shape",
        lambda m, t: t.update({k: torch.zeros(1) for k in t if k.startswith("cb0.best_state.")}),
        ("cb0.best_state",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_damaged_state_is_one_sentence_naming_the_field_and_stays(interrupted, tmp_path, capsys, case):
    _, damage, words = case
    out = copy_state(interrupted, tmp_path)
    path = state_dir_for(out) / STATE_FILE
    meta, tensors = read(path)
    damage(meta, tensors)
    write(path, meta, tensors)
    before = snapshot(state_dir_for(out))
    capsys.readouterr()
    assert main(train_args(interrupted[0], out, "--resume")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert STATE_FILE in err and all(w in err for w in words), err
    assert snapshot(state_dir_for(out)) == before and not out.exists()


@pytest.mark.parametrize(
    "raw, words",
    [
        ("{", ("metadata",)),
        ("[]", ("'state'",)),
        ("[" * 100_000, ("metadata",)),
        ('{"epoch": ' + "9" * 5000 + "}", ("metadata",)),
    ],
    ids=["cut JSON", "a list", "deep nesting", "huge integer"],
)
def test_metadata_that_is_not_convscope_json_is_named(interrupted, tmp_path, capsys, raw, words):
    out = copy_state(interrupted, tmp_path)
    path = state_dir_for(out) / STATE_FILE
    meta, tensors = read(path)
    write(path, meta, tensors, raw_meta=raw)
    before = snapshot(state_dir_for(out))
    assert main(train_args(interrupted[0], out, "--resume")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and STATE_FILE in err and all(w in err for w in words), err
    assert snapshot(state_dir_for(out)) == before


def test_truncated_state_file_is_named_and_kept(interrupted, tmp_path, capsys):
    out = copy_state(interrupted, tmp_path)
    path = state_dir_for(out) / STATE_FILE
    path.write_bytes(path.read_bytes()[:-100])
    before = snapshot(state_dir_for(out))
    assert main(train_args(interrupted[0], out, "--resume")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and STATE_FILE in err, err
    assert snapshot(state_dir_for(out)) == before


def test_an_untouched_state_resumes(interrupted, tmp_path):
    out = copy_state(interrupted, tmp_path)
    assert main(train_args(interrupted[0], out, "--resume")) == 0
    assert json.loads((out / "metrics.json").read_text())["resumed_from_epoch"] == 1


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda s: json.dumps({**s, "lr": "abc"}), ("settings.json", "lr", "'abc'")),
        (lambda s: json.dumps({**s, "patience": "2"}), ("settings.json", "patience")),
        (lambda s: '{"epochs": ' + "9" * 5000 + "}", ("settings.json", "4300")),
    ],
    ids=["lr text", "patience text", "integer past the digit limit"],
)
def test_a_damaged_settings_file_is_named_and_kept(interrupted, tmp_path, capsys, edit, words):
    out = copy_state(interrupted, tmp_path)
    settings = state_dir_for(out) / "settings.json"
    settings.write_text(edit(json.loads(settings.read_text())))
    before = snapshot(state_dir_for(out))
    assert main(train_args(interrupted[0], out, "--resume")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and all(w in err for w in words), err
    assert snapshot(state_dir_for(out)) == before
