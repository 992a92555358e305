"""'What this curve says': each pattern's note on a tiny synthetic history, and its absence."""

import math

import pytest
from torch import nn

from convscope.training.diagnostics import (
    ClassScore,
    batchnorm_momentum,
    read_curves,
    smoothed_loss_floor,
)
from convscope.training.history import History


def history(*rows, **ending):
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    return History([{"epoch": i + 1, **dict(zip(keys, row))} for i, row in enumerate(rows)], **ending)


def kinds(notes):
    return [n.kind for n in notes]


# The default demo's shape: training accuracy high, validation far behind while BatchNorm warms up.
YOUNG_BN = history((0.8, 0.77, 2.1, 0.27), (0.2, 0.94, 1.9, 0.25), (0.1, 0.96, 1.4, 0.36), stopped_early=True)


def test_batchnorm_warmup_names_the_residue_of_the_initial_statistics():
    notes = read_curves(YOUNG_BN, batchnorm_momentum=0.99, steps_per_epoch=100)
    assert kinds(notes) == ["batchnorm-warmup"]
    text = notes[0].text
    # epoch 1: 0.99^100 = 36.6% of the initial statistics left
    assert f"{0.99**100:.0%}" == "37%" and "37%" in text and "0.99^100" in text
    # under 1% left needs ceil(log(0.01) / log(0.99) / 100) = 5 epochs
    assert "at least 5 epochs" in text and "0.27" in text and "0.77" in text


def test_batchnorm_warmup_absent_without_batchnorm_or_when_statistics_are_old():
    assert read_curves(YOUNG_BN, batchnorm_momentum=None, steps_per_epoch=100) == []
    # momentum 0.9 over 100 steps leaves 0.9^100 ~ 3e-5: the lag is not BatchNorm's
    assert read_curves(YOUNG_BN, batchnorm_momentum=0.9, steps_per_epoch=100) == []
    close = history((0.5, 0.85, 0.5, 0.83), (0.3, 0.9, 0.3, 0.89))
    assert "batchnorm-warmup" not in kinds(read_curves(close, batchnorm_momentum=0.99, steps_per_epoch=100))


def test_overfitting_points_to_the_best_epoch_that_early_stopping_kept():
    h = history(
        (0.5, 0.8, 0.40, 0.85),
        (0.3, 0.9, 0.30, 0.9),
        (0.2, 0.95, 0.33, 0.9),
        (0.1, 0.98, 0.38, 0.9),
        weights_epoch=2,
        best_epoch=2,
        stopped_early=True,
    )
    notes = read_curves(h)
    assert kinds(notes) == ["overfitting"]
    assert "lowest at epoch 2 (0.3000)" in notes[0].text and "0.3800 by epoch 4" in notes[0].text
    assert "kept epoch 2's weights" in notes[0].text
    h.weights_epoch = 4
    assert "would keep epoch 2's" in read_curves(h)[0].text


def test_overfitting_absent_while_validation_loss_falls_or_barely_moves():
    falling = history((0.5, 0.8, 0.40, 0.85), (0.3, 0.9, 0.30, 0.9), (0.2, 0.95, 0.25, 0.92))
    flat = history((0.5, 0.8, 0.40, 0.85), (0.3, 0.9, 0.30, 0.9), (0.2, 0.95, 0.31, 0.92))  # +3% < 5%
    assert read_curves(falling) == [] and read_curves(flat) == []


def test_label_smoothing_explains_training_loss_above_validation_loss():
    h = history((0.9, 0.9, 0.4, 0.95), (0.7, 0.97, 0.2, 0.98))
    notes = read_curves(h, label_smoothing=0.1, num_classes=10)
    assert kinds(notes) == ["label-smoothing"]
    # targets 0.91 / 0.01: floor = -(0.91 ln 0.91 + 9 * 0.01 ln 0.01)
    floor = -(0.91 * math.log(0.91) + 9 * 0.01 * math.log(0.01))
    assert smoothed_loss_floor(0.1, 10) == pytest.approx(floor)
    assert f"{floor:.4f}" in notes[0].text and "0.910" in notes[0].text
    assert read_curves(h, label_smoothing=0.0, num_classes=10) == []
    below = history((0.9, 0.9, 1.0, 0.9), (0.5, 0.95, 0.6, 0.94))
    assert read_curves(below, label_smoothing=0.1, num_classes=10) == []


def test_imbalance_names_the_rare_class_behind_a_low_recall():
    classes = [
        ClassScore("A", 0.97, 400),
        ClassScore("B", 0.95, 420),
        ClassScore("C", 0.96, 380),
        ClassScore("J", 0.55, 40),
    ]
    notes = read_curves(history(), classes=classes)
    assert kinds(notes) == ["imbalance"]
    assert "'J'" in notes[0].text and "0.55" in notes[0].text and "40 training images" in notes[0].text
    assert "median of 390" in notes[0].text
    # a low recall on a well-represented class is not an imbalance; a rare class that is recognised is fine
    assert read_curves(history(), classes=[*classes[:3], ClassScore("J", 0.55, 400)]) == []
    assert read_curves(history(), classes=[*classes[:3], ClassScore("J", 0.95, 40)]) == []


def test_underfitting_when_both_accuracies_are_low_and_rising():
    h = history((2.0, 0.40, 2.1, 0.38), (1.5, 0.55, 1.6, 0.52))
    notes = read_curves(h)
    assert kinds(notes) == ["underfitting"]
    assert "accuracy 0.40 -> 0.55" in notes[0].text and "val accuracy 0.38 -> 0.52" in notes[0].text
    assert read_curves(history((2.0, 0.40, 2.1, 0.38), (1.5, 0.55, 1.6, 0.36))) == []  # validation fell
    assert read_curves(history((0.2, 0.95, 0.2, 0.94), (0.1, 0.97, 0.15, 0.96))) == []  # not low
    assert read_curves(history((2.0, 0.40, 2.1, 0.38), (1.5, 0.55, 1.6, 0.52), stopped_early=True)) == []


def test_batchnorm_momentum_is_read_back_in_keras_terms():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, momentum=0.01))
    assert batchnorm_momentum(model) == pytest.approx(0.99)
    assert batchnorm_momentum(nn.Sequential(nn.Linear(2, 2))) is None


def test_overfitting_is_not_claimed_while_batchnorm_statistics_are_young():
    rising = history((0.7, 0.77, 2.1, 0.28), (0.3, 0.9, 2.3, 0.30), (0.1, 0.96, 2.5, 0.36), weights_epoch=1)
    assert kinds(read_curves(rising)) == ["overfitting"]  # without BatchNorm it would be overfitting
    # 0.99^(100 * 1) = 37% at the best epoch: the rise is the young statistics, which the first note explains
    assert kinds(read_curves(rising, batchnorm_momentum=0.99, steps_per_epoch=100)) == ["batchnorm-warmup"]
    assert "3e-05 left after one epoch" in read_curves(rising, batchnorm_momentum=0.99, steps_per_epoch=100)[0].text
