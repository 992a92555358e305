"""Speed features and the fast recipe: bf16 parity, the fast preset, one-cycle, label smoothing, random shifts.

Behaviour only (numbers, shapes, settings, messages); no timing.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch

import convscope as cs
from convscope.cli import main as cli
from convscope.errors import UserError
from convscope.training.augment import random_shift
from convscope.training.fit import resolve_precision
from convscope.training.recipes import RECIPES, lr_scheduler, one_cycle, recipe_for


@pytest.fixture(scope="module")
def digits():
    """The first 2,000 embedded MNIST digits, split 80/20: small enough for a few short fits."""
    data = cs.load("mnist-5k")
    return data.subset(np.arange(2000)).split(test_size=0.2, seed=0)


def fit_fast(train, **kwargs):
    model = cs.build("fast", train.input_shape, train.num_classes, seed=0)
    kwargs = {"epochs": 3, "batch_size": 64, "lr": 4e-3, "validation_split": 0.1, "verbose": False, **kwargs}
    return cs.fit(model, train, **kwargs)


# --- bf16 ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bf16_autocast_matches_fp32_accuracy(digits):
    train, test = digits
    fp32 = cs.evaluate(fit_fast(train, precision="fp32"), test)
    bf16 = cs.evaluate(fit_fast(train, precision="bf16"), test)
    assert fp32.accuracy > 0.9
    assert abs(bf16.accuracy - fp32.accuracy) <= 0.02  # bf16 rounding, same seed and data
    assert np.mean(bf16.predictions == fp32.predictions) >= 0.95


def test_auto_precision_is_resolved_and_recorded(digits):
    train, _ = digits
    trained = fit_fast(train.subset(np.arange(320)), epochs=1, precision="auto")
    expected = resolve_precision("auto", torch.device("cpu"))
    assert expected in ("fp32", "bf16")
    assert trained.config["precision"] == expected
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_it_says_it_is_emulated(digits, monkeypatch, native):
    """On an AVX2 CPU a bf16 `cnn` fit ran 11x slower than fp32: a learner who asks for bf16 there is told why."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    train, _ = digits
    log = io.StringIO()
    small = train.subset(np.arange(128))
    trained = fit_fast(small, epochs=1, precision="bf16", verbose=True, log=log)
    assert trained.config["precision"] == "bf16"
    assert ("bf16 is emulated on this CPU" in log.getvalue()) is not native
    log = io.StringIO()
    fit_fast(small, epochs=1, precision="auto", verbose=True, log=log)
    assert "emulated" not in log.getvalue()  # auto never emulates: it picks fp32 where bf16 would be


# --- the fast preset and its recipe -------------------------------------------------------------


def test_fast_preset_architecture():
    summary = cs.summary(cs.build("fast", (28, 28, 1), 10), print_fn=None)
    assert summary.total_params == 29_402
    assert summary.non_trainable_params == 2 * (16 + 32 + 64)  # BatchNorm moving mean and variance
    assert summary.flops < cs.summary(cs.build("cnn", (28, 28, 1), 10), print_fn=None).flops / 5


def test_existing_presets_keep_their_recipe_and_counts():
    assert recipe_for("cnn") == RECIPES["keras"] == recipe_for("fast", "keras")
    keras = RECIPES["keras"]
    assert (keras.epochs, keras.batch_size, keras.lr, keras.validation_split, keras.patience) == (20, 32, 1e-3, 0.2, 3)
    assert (keras.precision, keras.schedule, keras.label_smoothing, keras.random_shift) == ("fp32", "constant", 0.0, 0)
    assert cs.summary(cs.build("cnn", (28, 28, 1), 10), print_fn=None).total_params == 44_010
    with pytest.raises(UserError, match="unknown recipe 'turbo'"):
        recipe_for("cnn", "turbo")


@pytest.mark.slow
def test_train_fast_uses_its_recipe(tmp_path):
    result = cs.train("mnist-5k", "fast", epochs=6, out=tmp_path / "run", verbose=False, report=False)
    fit_config = json.loads((tmp_path / "run" / "config.json").read_text())["fit"]
    fast = RECIPES["fast"]
    assert fit_config["batch_size"] == fast.batch_size and fit_config["lr"] == fast.lr
    assert fit_config["schedule"] == "one-cycle" and fit_config["label_smoothing"] == fast.label_smoothing
    assert fit_config["random_shift"] == fast.random_shift and fit_config["validation_split"] == fast.validation_split
    assert fit_config["epochs"] == 6  # an explicit setting wins over the recipe
    assert result.trained.history.epochs_run == 6
    assert result.evaluation.accuracy > 0.9


def test_cli_recipe_and_extras_flags(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli(
        [
            "train",
            "--model",
            "mlp",
            "--recipe",
            "fast",
            "--epochs",
            "1",
            "--label-smoothing",
            "0.05",
            "--random-shift",
            "1",
            "--precision",
            "fp32",
            "--quiet",
            "--no-report",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"] == "fast"
    assert config["fit"]["label_smoothing"] == 0.05 and config["fit"]["random_shift"] == 1
    assert config["fit"]["schedule"] == "one-cycle" and config["fit"]["precision"] == "fp32"
    with pytest.raises(SystemExit) as refused:  # argparse refuses it before anything runs
        cli(["train", "--schedule", "cosine", "--quiet"])
    assert refused.value.code == 2
    assert "invalid choice: 'cosine'" in capsys.readouterr().err


# --- the recipe options, each on its own ------------------------------------------------------


def test_one_cycle_warms_up_then_decays_to_zero():
    total = 100
    factors = [one_cycle(step, total) for step in range(total + 1)]
    assert factors[0] == pytest.approx(1 / 25)
    assert max(factors) == pytest.approx(1.0) and factors.index(1.0) == 24  # the end of the first quarter
    assert all(a < b for a, b in zip(factors[:24], factors[1:25]))
    assert all(a > b for a, b in zip(factors[24:100], factors[25:101]))
    assert factors[-1] == 0.0
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    assert lr_scheduler(optimizer, "constant", total) is None


def test_schedule_is_recorded_per_epoch(digits):
    train, _ = digits
    part = train.subset(np.arange(640))
    # 4 epochs: the warm-up is the first quarter of the steps, so the rate peaks as epoch 1 ends,
    # then falls linearly to zero; the history records the rate of each epoch's last step.
    lrs = fit_fast(part, epochs=4, schedule="one-cycle").history.column("lr")
    assert lrs == pytest.approx([4e-3, 4e-3 * 2 / 3, 4e-3 / 3, 0.0], abs=4e-4)
    assert lrs[0] > lrs[1] > lrs[2] > lrs[3]
    assert fit_fast(part, epochs=2).history.column("lr") == [4e-3, 4e-3]  # Keras' constant rate by default


def test_label_smoothing_sets_a_floor_under_the_training_loss(digits):
    train, _ = digits
    eps, k = 0.2, 10
    # Cross-entropy against a smoothed target can never go below that target's entropy.
    p_true, p_other = 1 - eps + eps / k, eps / k
    floor = -(p_true * math.log(p_true) + (k - 1) * p_other * math.log(p_other))
    part = train.subset(np.arange(640))
    smoothed = fit_fast(part, epochs=2, label_smoothing=eps).history.column("loss")
    plain = fit_fast(part, epochs=2).history.column("loss")
    assert min(smoothed) > floor
    assert plain[-1] < smoothed[-1]


def test_random_shift_moves_each_image_within_the_limit():
    n, size, pixels = 64, 9, 2
    x = torch.zeros(n, 1, size, size)
    x[:, 0, 4, 4] = 1.0  # one bright pixel in the middle of each image
    moved = random_shift(x, pixels, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and torch.equal(moved.sum(dim=(1, 2, 3)), torch.ones(n))
    rows, cols = (moved[:, 0] == 1).nonzero()[:, 1:].T
    assert (rows - 4).abs().max() <= pixels and (cols - 4).abs().max() <= pixels
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # every image gets its own offset
    again = random_shift(x, pixels, torch.Generator().manual_seed(0))
    assert torch.equal(moved, again)  # reproducible from the generator
    assert random_shift(x, 0, torch.Generator()) is x


def test_random_shift_repeats_the_edge_instead_of_a_dark_frame():
    x = torch.full((16, 1, 6, 6), 0.8)  # a light, flat image
    moved = random_shift(x, 2, torch.Generator().manual_seed(1))
    assert torch.equal(moved, x)


def test_random_shift_keeps_several_channels_together():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    moved = random_shift(x, 1, torch.Generator().manual_seed(0))
    # channel c is channel 0 plus c*25 in x, so it must stay so after every move
    for c in range(3):
        assert torch.equal(moved[:, c] - moved[:, 0], torch.full((2, 5, 5), 25.0 * c))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"schedule": "cosine"}, "schedule must be one of constant, one-cycle"),
        ({"label_smoothing": 1.5}, r"label_smoothing must be a finite number in \[0, 1\)"),
        ({"random_shift": -1}, r"random_shift must be an integer in \[0, 1,024\]"),
        ({"precision": "fp16"}, "precision must be one of fp32, bf16, auto"),
    ],
)
def test_bad_options_are_user_errors(digits, kwargs, message):
    with pytest.raises(UserError, match=message):
        fit_fast(digits[0], **kwargs)
