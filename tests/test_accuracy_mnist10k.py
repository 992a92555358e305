"""The accuracy expected of the default model: the `cnn` preset with default settings reaches at least 97% test
accuracy on the real MNIST 10k (skipped where shared/ does not hold it)."""

from __future__ import annotations

import json

import pytest

import convscope as cs

pytestmark = pytest.mark.slow


def test_cnn_reaches_97_percent_on_mnist_10k(mnist_10k, tmp_path):
    result = cs.train(str(mnist_10k), "cnn", out=tmp_path / "run", verbose=False)
    assert len(result.evaluation.labels) == 2000  # the default 0.2 stratified test split
    assert result.evaluation.accuracy >= 0.97
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result.evaluation.accuracy
