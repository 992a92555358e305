"""The course's Keras habits: every Keras argument of the callbacks, and one best epoch everywhere.

Keras' own signatures are read in a separate process (Keras on the torch backend), so Keras never
shares the test process; without Keras installed those tests skip.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import convscope as cs
from convscope.presentation.live import chart_figure
from convscope.training import notebook_progress, progress
from convscope.training.diagnostics import notes_for
from convscope.training.early_stopping import EarlyStopping, MonitorRule, best_epoch
from synthetic import SMALL_SPEC, tiny_dataset

CALLBACKS = (
    "EarlyStopping",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "CSVLogger",
    "TensorBoard",
    "LearningRateScheduler",
    "TerminateOnNaN",
)

_KERAS_SIGNATURES = """
import inspect, json, sys, keras
out = {}
for name in sys.argv[1:]:
    params = inspect.signature(getattr(keras.callbacks, name)).parameters.values()
    out[name] = [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def keras_signatures() -> dict[str, list[str]]:
    # find_spec, not importorskip: importing Keras here picks its TensorFlow backend, fails without TensorFlow,
    # and importorskip would turn that failure into a skip on every machine.
    if importlib.util.find_spec("keras") is None:
        pytest.skip("Keras 3 is missing: pip install 'convscope[keras]' (make test does)")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run(
        [sys.executable, "-c", _KERAS_SIGNATURES, *CALLBACKS], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name", CALLBACKS)
def test_every_keras_argument_is_accepted(keras_signatures, name):
    import inspect

    ours = set(inspect.signature(getattr(cs, name)).parameters)
    missing = [p for p in keras_signatures[name] if p not in ours]
    assert not missing, f"cs.{name} lacks Keras' arguments {missing}"


def test_the_courses_early_stopping_arguments_run(tmp_path, capsys):
    data = tiny_dataset(n=120)
    model = cs.build(SMALL_SPEC, data.input_shape, data.num_classes, seed=0)
    stopper = cs.EarlyStopping(
        monitor="val_loss",
        min_delta=0,
        patience=1,
        verbose=1,
        mode="min",
        baseline=None,
        restore_best_weights=True,
        start_from_epoch=0,
    )
    checkpoint = cs.ModelCheckpoint(
        str(tmp_path / "best.safetensors"),
        monitor="val_loss",
        verbose=1,
        save_best_only=True,
        save_weights_only=True,
        mode="min",
        save_freq="epoch",
        initial_value_threshold=None,
    )
    trained = cs.fit(
        model,
        data,
        validation_split=0.25,
        epochs=2,
        batch_size=16,
        verbose=False,
        early_stopping=stopper,
        callbacks=[checkpoint, cs.TerminateOnNaN(raise_error=True)],
    )
    assert trained.history.epochs_run == 2
    assert (tmp_path / "best.safetensors").is_file()
    assert "Epoch 1: val_loss improved from None to" in capsys.readouterr().out


def test_what_convscope_cannot_honour_is_one_sentence():
    with pytest.raises(cs.UserError, match=r"save_weights_only=False"):
        cs.ModelCheckpoint("x.safetensors", save_weights_only=False)
    with pytest.raises(cs.UserError, match=r"TensorBoard\(embeddings_freq=1\)"):
        cs.TensorBoard("logs", embeddings_freq=1)
    with pytest.raises(cs.UserError, match=r"takes no argument 'bogus'"):
        cs.ReduceLROnPlateau(bogus=1)


def test_baseline_and_start_from_epoch_follow_keras():
    def stop_epoch(stopper, values):
        for epoch, value in enumerate(values, start=1):
            if stopper.update(epoch, {"val_loss": value}, SimpleNamespace(state_dict=dict)):
                return epoch, stopper.best_epoch
        return None, stopper.best_epoch

    # Keras 3: improving on the best but not on the baseline does not reset the wait
    assert stop_epoch(EarlyStopping(patience=2, baseline=0.5), [1.0, 0.9, 0.95, 0.96]) == (3, 2)
    assert stop_epoch(EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.96]) == (4, 2)
    # epochs before start_from_epoch are not looked at: the best is epoch 3, not the lower epoch 1
    assert stop_epoch(EarlyStopping(patience=5, start_from_epoch=2), [0.1, 0.9, 0.8, 0.85]) == (None, 3)
    assert (
        best_epoch(
            [{"epoch": e, "val_loss": v} for e, v in enumerate([0.1, 0.9, 0.8, 0.85], 1)],
            MonitorRule(start_from_epoch=2),
        )
        == 3
    )


def test_summary_takes_a_preset_a_spec_dict_or_a_spec_file(tmp_path):
    by_name = cs.summary("cnn", input_shape=(28, 28, 1), print_fn=None)
    by_dict = cs.summary(SMALL_SPEC, input_shape=(8, 8, 1), print_fn=None, num_classes=2)
    path = tmp_path / "small.json"
    path.write_text(json.dumps(SMALL_SPEC))
    by_file = cs.summary(str(path), input_shape=[8, 8, 1], print_fn=None, num_classes=2)
    built = cs.build(SMALL_SPEC, (8, 8, 1), 2)
    assert by_dict.total_params == by_file.total_params == cs.summary(built, print_fn=None).total_params
    assert by_name.input_shape == (28, 28, 1) and by_name.total_params > 0


class _Cell:
    """IPython's display(obj, display_id=True): records the last object of each output."""

    def __init__(self):
        self.outputs: list[object] = []

    def __call__(self, obj, display_id=False):
        index = len(self.outputs)
        self.outputs.append(obj)
        outputs = self.outputs
        return SimpleNamespace(update=lambda new: outputs.__setitem__(index, new))


def test_every_view_names_the_epoch_whose_weights_the_run_keeps(monkeypatch):
    """min_delta larger than every later improvement: the run keeps epoch 1, and every view says so."""
    cell = _Cell()
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(notebook_progress.NotebookProgress, "_display", lambda self, obj: cell(obj, True))
    data = tiny_dataset(n=160)
    model = cs.build(SMALL_SPEC, data.input_shape, data.num_classes, seed=0)
    stopper = cs.EarlyStopping(monitor="val_loss", min_delta=5.0, patience=5, restore_best_weights=True)
    trained = cs.fit(model, data, validation_split=0.25, epochs=4, batch_size=16, early_stopping=stopper)
    history = trained.history
    losses = history.column("val_loss")
    assert min(losses) < losses[0]  # a later epoch was lower, by less than min_delta
    assert history.best_epoch == history.weights_epoch == 1
    status, chart = cell.outputs
    assert "best epoch 1" in repr(status) and "min_delta 5 is larger than any val_loss improvement" in repr(status)
    labels = [line.get_label() for ax in chart_figure(chart).axes for line in ax.get_lines()]
    assert "best epoch 1" in labels and not any(l.startswith("best epoch") and l != "best epoch 1" for l in labels)
    (note,) = [n for n in notes_for(history, trained.model, trained.config, None, 2) if n.kind == "min-delta"]
    largest = losses[0] - min(losses)
    assert f"(largest {largest:.3g}): the run kept epoch 1" in str(note)
    # the terminal progress bar names the same epoch
    log = io.StringIO()
    cs.fit(
        cs.build(SMALL_SPEC, data.input_shape, 2, seed=0),
        data,
        validation_split=0.25,
        epochs=3,
        batch_size=16,
        early_stopping=stopper,
        log=log,
    )
    assert "best epoch 1 (val_loss)" in log.getvalue()
    assert np.isfinite(losses).all()


@pytest.mark.slow
def test_report_from_python_names_the_split_and_every_count_agrees(tmp_path):
    from test_report import parse  # the report's own page parser

    data = tiny_dataset(n=200)
    train, test = data.split(test_size=0.25, seed=3)
    model = cs.build(SMALL_SPEC, data.input_shape, data.num_classes, seed=0)
    trained = cs.fit(model, train, validation_split=0.2, epochs=1, batch_size=16, verbose=False)
    result = cs.evaluate(trained, test)
    page_path = cs.report(trained, result, tmp_path / "course.html", samples=train)
    assert page_path == tmp_path / "course.html" and (tmp_path / "course" / "report.html").is_file()
    page = parse(page_path.read_text())
    rows = {r[0]: r[1] for t in page.tables for r in t if len(r) == 2}
    assert rows["training images"] == str(len(train)) and rows["test images"] == str(len(test))
    assert rows["of which validation"].startswith(f"{len(train) - int(len(train) * 0.8):,} ")
    assert rows["test split"] == "0.25 stratified, seed 3"
    classes = next(t for t in page.tables if t and t[0][:2] == ["class", "images (training split)"])
    assert sum(int(r[1].replace(",", "")) for r in classes[1:]) == len(train)
    assert sum(int(r[3].replace(",", "")) for r in classes[1:]) == len(test)
    scores = next(t for t in page.tables if t and t[0][:5] == ["class", "precision", "recall", "F1", "support"])
    assert sum(int(r[4].replace(",", "")) for r in scores[1:]) == len(test)
    held_out = int(rows["of which validation"].split()[0].replace(",", ""))
    assert held_out + int(len(train) * 0.8) == len(train) == int(rows["training images"].replace(",", ""))
    assert int(rows["test images"].replace(",", "")) + len(train) == len(data)


def test_an_estimate_of_the_epoch_time_comes_before_the_first_epoch(monkeypatch):
    data = tiny_dataset(n=80)
    log = io.StringIO()
    cs.fit(cs.build(SMALL_SPEC, data.input_shape, 2, seed=0), data, epochs=1, batch_size=16, log=log)
    first = log.getvalue().splitlines()[0]
    assert re.fullmatch(
        r"about \d+(\.\d)? (s|min) per epoch on (\d+ CPU cores?|cuda:\d+) \(\d+(\.\d)? \w?FLOPs per image\)", first
    ), first
    # in a notebook, the status line shows it until the first epoch ends
    cell = _Cell()
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(notebook_progress.NotebookProgress, "_display", lambda self, obj: cell(obj, True))
    seen = []
    original = notebook_progress.NotebookProgress._put_status

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(repr(cell.outputs[0]))

    monkeypatch.setattr(notebook_progress.NotebookProgress, "_put_status", spy)
    cs.fit(cs.build(SMALL_SPEC, data.input_shape, 2, seed=0), data, epochs=1, batch_size=16)
    assert "per epoch on" in seen[0]
