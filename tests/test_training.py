"""Training: early-stopping semantics, restoring the best epoch, reproducibility, Ctrl-C, validation_split."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import convscope as cs
from convscope.errors import UserError
from convscope.training import EarlyStopping, Tensors, evaluate_tensors
from synthetic import SMALL_SPEC as SMALL
from synthetic import tiny_dataset


def small_fit(seed: int = 0, **kwargs):
    data = tiny_dataset()
    model = cs.build(SMALL, data.input_shape, data.num_classes, seed=seed)
    kwargs.setdefault("epochs", 3)
    return cs.fit(model, data, validation_split=0.25, batch_size=16, seed=seed, verbose=False, **kwargs)


class FakeModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


def run_stopper(stopper: EarlyStopping, values: list[float], key: str = "val_loss") -> tuple[int, int | None, float]:
    """Feed a sequence of monitored values; the fake model's weight is set to the epoch number."""
    model = FakeModel()
    for epoch, value in enumerate(values, start=1):
        with torch.no_grad():
            model.w.fill_(epoch)
        if stopper.update(epoch, {key: value}, model):
            break
    stopper.restore(model)
    return epoch, stopper.best_epoch, float(model.w.detach())


def test_patience_counts_epochs_without_improvement():
    assert run_stopper(EarlyStopping(patience=2), [1.0, 0.8, 0.9, 0.85, 0.7]) == (4, 2, 4.0)
    assert run_stopper(EarlyStopping(patience=0), [1.0, 1.1, 0.5]) == (2, 1, 2.0)


def test_min_delta_requires_a_large_enough_improvement():
    # 0.95 improves on 1.0 by 0.05, not by more than min_delta=0.1
    assert run_stopper(EarlyStopping(patience=1, min_delta=0.1), [1.0, 0.95, 0.5]) == (2, 1, 2.0)


def test_mode_auto_maximises_accuracy_and_restores_best_weights():
    stopper = EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
    assert run_stopper(stopper, [0.5, 0.9, 0.8, 0.85, 0.99], key="val_accuracy") == (4, 2, 2.0)
    # mode="min" on an accuracy would take the worst one as best
    assert (
        run_stopper(EarlyStopping(monitor="val_accuracy", mode="min", patience=1), [0.5, 0.9], key="val_accuracy")[1]
        == 1
    )


def test_bad_early_stopping_settings():
    with pytest.raises(UserError, match="can monitor"):
        EarlyStopping(monitor="val_f1")
    with pytest.raises(UserError, match="mode must be"):
        EarlyStopping(mode="up")


def test_fit_ends_holding_the_best_epochs_weights():
    """With restore_best_weights the model's val_loss equals the best epoch's recorded val_loss."""
    trained = small_fit(
        epochs=6, early_stopping=EarlyStopping(monitor="val_loss", patience=6, restore_best_weights=True)
    )
    history = trained.history
    best = history.best_epoch
    recorded = history.column("val_loss")
    assert best == int(np.argmin(recorded)) + 1
    assert history.weights_epoch == best
    data = tiny_dataset()
    val = data.subset(np.arange(180, 240))
    loss, _ = evaluate_tensors(trained.model, Tensors.of(val, trained.scaler, trained.device))
    assert loss == pytest.approx(recorded[best - 1], rel=1e-5)


def test_same_seed_same_result_and_other_seed_differs():
    a, b, c = small_fit(seed=3), small_fit(seed=3), small_fit(seed=4)
    assert a.history.column("loss") == b.history.column("loss")
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert a.history.column("loss") != c.history.column("loss")


def test_validation_split_takes_the_last_fraction_and_scaler_uses_training_only():
    data = tiny_dataset()
    images = data.images.copy()
    images[-60:] = 255  # validation tail: brighter than anything in the training part
    images[:-60] = np.minimum(images[:-60], 200)
    data = cs.Dataset(images, data.labels, data.class_names, "tiny")
    model = cs.build(SMALL, data.input_shape, data.num_classes, seed=0)
    trained = cs.fit(model, data, validation_split=0.25, epochs=1, verbose=False)
    assert trained.scaler.maximum == 200.0  # the last 25% (60 images) never reached the statistics


def test_ctrl_c_stops_cleanly_with_the_best_weights_so_far(monkeypatch):
    data = tiny_dataset()
    network = cs.build(SMALL, data.input_shape, data.num_classes, seed=0)
    snapshots = []

    class Interrupting(torch.nn.Module):
        """Raises KeyboardInterrupt on the 15th training batch (epoch 2 of 12 batches an epoch)."""

        def __init__(self):
            super().__init__()
            self.net, self.calls = network, 0

        def forward(self, x):
            if self.training:
                self.calls += 1
                if self.calls == 15:
                    raise KeyboardInterrupt
            return self.net(x)

    stopper = EarlyStopping(patience=5, restore_best_weights=True)
    out = io.StringIO()
    wrapper = Interrupting()
    original_update = EarlyStopping.update

    def spy(self, epoch, metrics, model):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return original_update(self, epoch, metrics, model)

    monkeypatch.setattr(EarlyStopping, "update", spy)
    trained = cs.fit(wrapper, data, validation_split=0.25, batch_size=15, epochs=5, early_stopping=stopper, log=out)
    assert trained.history.interrupted and trained.history.epochs_run == 1
    assert "Interrupted" in out.getvalue()
    state = trained.model.state_dict()
    assert all(torch.equal(state[k], snapshots[0][k]) for k in state)


def test_progress_lines_name_every_metric():
    out = io.StringIO()
    data = tiny_dataset()
    model = cs.build(SMALL, data.input_shape, data.num_classes, seed=0)
    cs.fit(model, data, validation_split=0.25, epochs=2, log=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("about ") and " per epoch on " in lines[0]  # the estimate before the first epoch
    assert lines[1] == "Epoch 1/2"
    assert all(k in lines[2] for k in ("loss:", "accuracy:", "val_loss:", "val_accuracy:"))


def test_fit_rejects_impossible_settings():
    data = tiny_dataset()
    model = cs.build(SMALL, data.input_shape, data.num_classes)
    with pytest.raises(UserError, match="there is no validation data"):
        cs.fit(model, data, early_stopping=EarlyStopping(), verbose=False)
    with pytest.raises(UserError, match=r"validation_split must be a finite number in \[0, 1\)"):
        cs.fit(model, data, validation_split=1.5, verbose=False)


def test_evaluate_matches_accuracy_and_has_per_class_scores():
    trained = small_fit(epochs=4)
    data = tiny_dataset(seed=9)
    result = cs.evaluate(trained, data)
    assert np.allclose(result.probabilities.sum(1), 1, atol=1e-5)
    assert result.accuracy == pytest.approx((result.predictions == data.labels).mean())
    assert result.confusion_matrix.sum() == len(data)
    assert [row["class"] for row in result.per_class] == ["top", "bottom"]
    assert sum(row["support"] for row in result.per_class) == len(data)


def test_predict_proba_uses_the_runs_training_precision_and_any_batch_size():
    fp32 = small_fit(epochs=1)
    images = tiny_dataset(seed=5).images
    exact = fp32.predict_proba(images, precision="fp32")
    assert np.array_equal(fp32.predict_proba(images), exact)  # an fp32 run predicts exactly
    assert np.allclose(fp32.predict_proba(images, batch_size=7), exact, atol=1e-6)  # batching changes nothing
    bf16 = small_fit(epochs=1, precision="bf16")
    assert bf16.config["precision"] == "bf16"
    default, forced = bf16.predict_proba(images), bf16.predict_proba(images, precision="fp32")
    assert np.allclose(default.sum(1), 1, atol=1e-5)
    assert not np.array_equal(default, forced)  # bf16 arithmetic, as the run validated
    assert np.abs(default - forced).max() < 0.05
