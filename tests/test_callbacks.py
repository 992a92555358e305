"""Keras callbacks: each against a hand-computed expectation, and the contract other code relies on."""

from __future__ import annotations

import csv
import io
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import convscope as cs
from convscope.errors import UserError
from convscope.training.callbacks import Callback
from synthetic import SMALL_SPEC, tiny_dataset


def small_fit(epochs=3, callbacks=(), **kwargs):
    data = tiny_dataset()
    model = cs.build(SMALL_SPEC, data.input_shape, data.num_classes, seed=0)
    return cs.fit(
        model,
        data,
        epochs=epochs,
        validation_split=0.25,
        batch_size=16,
        verbose=False,
        callbacks=list(callbacks),
        **kwargs,
    )


class _Holder(torch.nn.Module):
    """A stand-in for the model during fit: its optimizer and stop flag, as callbacks see them."""

    def __init__(self, lr=1e-3):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.optimizer = torch.optim.SGD([self.w], lr=lr)
        self.stop_training = False


def test_reduce_lr_on_plateau_follows_keras_rule_epoch_by_epoch():
    cb = cs.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_delta=0.0, cooldown=1)
    holder = _Holder()
    cb.set_model(holder)
    cb.on_train_begin()
    rates = []
    for epoch, value in enumerate([1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.94, 0.95]):
        cb.on_epoch_end(epoch, {"val_loss": value})
        rates.append(holder.optimizer.param_groups[0]["lr"])
    # epoch 3: second epoch without beating 0.9 -> halve; epoch 4 is cooldown (wait reset, then 1);
    # epoch 5: wait 2 -> halve; epoch 6 cooldown -> wait 1; epoch 7: wait 2 -> halve
    assert rates == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 1.25e-4], rel=0, abs=1e-15)


def test_reduce_lr_on_plateau_respects_min_lr_and_min_delta():
    cb = cs.ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=1, min_delta=0.05, min_lr=5e-5)
    holder = _Holder()
    cb.set_model(holder)
    cb.on_train_begin()
    for epoch, value in enumerate([0.5, 0.52, 0.53, 0.6]):  # +0.02 and +0.03 are within min_delta: no improvement
        cb.on_epoch_end(epoch, {"val_accuracy": value})
    # epoch 1 -> 1e-4; epoch 2 -> max(1e-5, 5e-5) = 5e-5; epoch 3 improved by 0.1 (mode max from the name)
    assert holder.optimizer.param_groups[0]["lr"] == pytest.approx(5e-5)


def test_reduce_lr_on_plateau_inside_fit_lowers_the_rate_at_the_right_epoch():
    # min_delta so large that nothing after epoch 1 counts as better: the rate halves after epochs 2 and 3
    trained = small_fit(epochs=4, callbacks=[cs.ReduceLROnPlateau(factor=0.5, patience=1, min_delta=1e9)])
    assert trained.history.column("lr") == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])


def test_learning_rate_scheduler_sets_each_epochs_rate():
    trained = small_fit(callbacks=[cs.LearningRateScheduler(lambda epoch, lr: 1e-3 * 0.5**epoch)])
    assert trained.history.column("lr") == pytest.approx([1e-3, 5e-4, 2.5e-4])


class Snapshots(Callback):
    def __init__(self):
        super().__init__()
        self.states, self.logs = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.states.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        self.logs.append(dict(logs))


def test_model_checkpoint_keeps_the_best_epochs_weights(tmp_path):
    spy = Snapshots()
    best_file = tmp_path / "best.safetensors"
    trained = small_fit(
        epochs=5, callbacks=[cs.ModelCheckpoint(best_file, monitor="val_loss", save_best_only=True), spy], lr=0.05
    )  # a high rate, so that val_loss does not simply fall every epoch
    losses = trained.history.column("val_loss")
    best = int(np.argmin(losses))
    saved = load_file(str(best_file))
    assert saved.keys() == spy.states[best].keys()
    assert all(torch.equal(saved[k], spy.states[best][k]) for k in saved)


def test_model_checkpoint_formats_the_file_name_per_epoch(tmp_path):
    small_fit(epochs=2, callbacks=[cs.ModelCheckpoint(tmp_path / "w-{epoch:02d}.safetensors")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w-01.safetensors", "w-02.safetensors"]


def test_csv_logger_writes_one_row_per_epoch_and_appends(tmp_path):
    path = tmp_path / "log.csv"
    trained = small_fit(callbacks=[cs.CSVLogger(path)])
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "lr", "val_accuracy", "val_loss"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # Keras writes the 0-based epoch
    assert [float(r["val_loss"]) for r in rows] == trained.history.column("val_loss")
    small_fit(epochs=2, callbacks=[cs.CSVLogger(path, append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 3 + 2 and lines.count(lines[0]) == 1  # one header, five rows


class NaNAfter(torch.nn.Module):
    def __init__(self, net, calls):
        super().__init__()
        self.net, self.calls, self.left = net, calls, calls

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.left -= 1
            if self.left < 0:
                return out * float("nan")
        return out


def test_terminate_on_nan_stops_at_the_first_nan_batch(capsys):
    data = tiny_dataset()
    net = NaNAfter(cs.build(SMALL_SPEC, data.input_shape, data.num_classes, seed=0), calls=15)  # 12 batches an epoch
    seen = []

    class Batches(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    trained = cs.fit(
        net,
        data,
        epochs=4,
        validation_split=0.25,
        batch_size=15,
        verbose=False,
        callbacks=[cs.TerminateOnNaN(), Batches()],
    )
    assert trained.history.epochs_run == 2 and trained.history.stopped_early
    assert seen[-1] == 3  # the 16th batch overall is batch 3 of epoch 2 (0-based): nothing after it
    assert "invalid loss" in capsys.readouterr().out


def test_callback_contract_params_epochs_and_logs():
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            calls.append(("begin", dict(self.params)))

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(("epoch_begin", epoch))

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch_end", epoch, sorted(logs)))

        def on_train_end(self, logs=None):
            calls.append(("end",))

    small_fit(epochs=2, callbacks=[Recorder()])
    assert calls[0] == ("begin", {"epochs": 2, "steps": 12, "verbose": 0})  # 180 training images / 16
    assert calls[1:] == [
        ("epoch_begin", 0),
        ("epoch_end", 0, ["accuracy", "loss", "lr", "val_accuracy", "val_loss"]),
        ("epoch_begin", 1),
        ("epoch_end", 1, ["accuracy", "loss", "lr", "val_accuracy", "val_loss"]),
        ("end",),
    ]


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trained = small_fit(epochs=3, callbacks=[cs.TensorBoard(tmp_path / "tb")])
    train = EventAccumulator(str(tmp_path / "tb" / "train"))
    train.Reload()
    val = EventAccumulator(str(tmp_path / "tb" / "validation"))
    val.Reload()
    loss = train.Scalars("epoch_loss")
    assert [e.step for e in loss] == [0, 1, 2]
    assert [e.value for e in loss] == pytest.approx(trained.history.column("loss"), rel=1e-6)
    assert [e.value for e in val.Scalars("epoch_accuracy")] == pytest.approx(trained.history.column("val_accuracy"))
    assert [e.value for e in train.Scalars("epoch_learning_rate")] == pytest.approx([1e-3] * 3)


def test_tensorboard_without_the_extra_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were missing
    with pytest.raises(UserError, match=r"convscope\[tensorboard\]"):
        cs.TensorBoard("logs")


def test_callbacks_monitoring_validation_need_validation_data():
    data = tiny_dataset()
    model = cs.build(SMALL_SPEC, data.input_shape, data.num_classes, seed=0)
    with pytest.raises(UserError, match="ReduceLROnPlateau monitors val_loss"):
        cs.fit(model, data, epochs=1, verbose=False, callbacks=[cs.ReduceLROnPlateau()])
    with pytest.raises(UserError, match="factor"):
        cs.ReduceLROnPlateau(factor=1.5)
