"""`cs.experiment` and `convscope sweep --grid`: every combination, several seeds, mean ± spread and the noise note."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import convscope as cs
from convscope.cli import main
from convscope.experiment import ExperimentResult, Trial
from convscope.presentation.experiment import experiment_chart
from synthetic import SMALL_SPEC, tiny_dataset, write_tiny_npz


def test_experiment_trains_every_value_with_every_seed_changing_nothing_else(tmp_path):
    result = cs.experiment(
        tiny_dataset(n=120),
        SMALL_SPEC,
        grid={"filters": [2, 4, 8]},
        repeats=2,
        epochs=1,
        batch_size=16,
        out=tmp_path / "exp",
    )
    assert [(dict(t.values)["filters"], t.seed) for t in result.trials] == [(f, s) for f in (2, 4, 8) for s in (0, 1)]
    for t in result.trials:  # ordinary run directories, with the one thing that changed
        run = cs.load_run(t.path)
        filters = [l["filters"] for l in run.model.spec.to_dict()["layers"] if l["type"] == "Conv2D"]
        assert filters == [dict(t.values)["filters"]]
        config = json.loads((t.path / "config.json").read_text())
        assert config["data"]["split_seed"] == 0 and config["data"]["test_split"] == 0.2
        assert config["fit"]["seed"] == t.seed and config["fit"]["batch_size"] == 16
    (g2, g4, g8) = result.groups
    assert g4.mean == pytest.approx(np.mean([t.accuracy for t in result.trials[2:4]]))
    assert g4.spread == pytest.approx(np.std([t.accuracy for t in result.trials[2:4]], ddof=1))
    table = result.table()
    assert re.search(r"filters=4 +\d\.\d{4} ± \d\.\d{4} +2 ", table)
    axes = experiment_chart(result).figure.axes
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["filters=2", "filters=4", "filters=8"]


def _result(scores: dict[int, list[float]]) -> ExperimentResult:
    trials = [
        Trial((("filters", f),), seed, acc, 0.0, 1, None)  # type: ignore[arg-type]
        for f, accs in scores.items()
        for seed, acc in enumerate(accs)
    ]
    return ExperimentResult({"filters": list(scores)}, trials)


def test_the_note_says_when_differences_are_within_the_spread():
    noisy = _result({8: [0.86, 0.55, 0.70], 16: [0.566, 0.80, 0.75], 32: [0.60, 0.62, 0.61]})
    assert noisy.note().startswith("The differences are within the spread of the repeats")
    clear = _result({8: [0.80, 0.81, 0.79], 16: [0.90, 0.91, 0.89], 32: [0.60, 0.62, 0.61]})
    assert "filters=16 (0.900 ± 0.010) is ahead of filters=8 (0.800 ± 0.010) by 0.100, more than" in clear.note()


def test_sweep_grid_command(tmp_path, capsys):
    data = write_tiny_npz(tmp_path, n=80)
    spec = tmp_path / "small.json"
    spec.write_text(json.dumps(SMALL_SPEC))
    out = tmp_path / "exp"
    args = [
        "sweep",
        "--data",
        str(data),
        "--model",
        str(spec),
        "--grid",
        "filters=2,4",
        "--repeats",
        "2",
        "--epochs",
        "1",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert len(re.findall(r"filters=\d, seed \d: test accuracy", text)) == 4
    assert "test accuracy (mean ± spread)" in text and (out / "experiment.png").is_file()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "filters2-seed0",
        "filters2-seed1",
        "filters4-seed0",
        "filters4-seed1",
    ]


def test_bad_grid_is_one_sentence():
    with pytest.raises(cs.UserError, match="'colour' is not a value it can vary"):
        cs.experiment(tiny_dataset(n=40), SMALL_SPEC, grid={"colour": [1]})


def test_each_run_is_trained_with_the_settings_train_would_use():
    from convscope.experiment import run_settings
    from convscope.training.settings import TrainSettings

    settings = run_settings("cnn", 4, 2, 0.25, 3, {"lr": 0.01, "min_delta": 0.05})
    fit = settings.fit_settings()
    assert (fit.seed, fit.epochs, fit.validation_split, fit.lr, fit.batch_size) == (4, 2, 0.25, 0.01, 32)
    stopper = settings.early_stopping()
    assert (stopper.monitor, stopper.patience, stopper.min_delta, stopper.restore_best_weights) == (
        "val_loss",
        3,
        0.05,
        True,
    )
    # the same function `convscope train` uses: the fast preset's recipe has no early stopping
    assert TrainSettings(model="fast").early_stopping() is None
    assert TrainSettings(model="cnn", patience=5).early_stopping().patience == 5


def test_an_option_the_experiment_would_ignore_is_refused_before_training(tmp_path):
    with pytest.raises(TypeError, match="unexpected keyword argument 'nproc'"):
        cs.experiment(tiny_dataset(n=40), SMALL_SPEC, grid={"filters": [2]}, repeats=1, out=tmp_path / "x", nproc=2)
    assert not (tmp_path / "x").exists()
