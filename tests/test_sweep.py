"""Sweeps: Optuna trials are ordinary run directories, the study can be joined again, the best spec retrains the same."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import yaml

optuna = pytest.importorskip("optuna")  # the sweep extra

import convscope as cs  # noqa: E402
from convscope.cli import main  # noqa: E402
from convscope.errors import UserError  # noqa: E402
from convscope.sweep import SearchSpace, draw, trial_run_dirs  # noqa: E402
from synthetic import SMALL_SPEC, tiny_dataset  # noqa: E402


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    data = tiny_dataset(200)
    np.savez(root / "tiny.npz", x=data.images, y=data.labels)
    (root / "small.yaml").write_text(yaml.safe_dump(SMALL_SPEC))
    args = [
        "sweep",
        "--data",
        str(root / "tiny.npz"),
        "--model",
        str(root / "small.yaml"),
        "--epochs",
        "2",
        "--filters",
        "2,8",
        "--batch-sizes",
        "16,32",
        "--out",
        str(root / "study"),
    ]
    assert main([*args, "--trials", "3"]) == 0
    assert main([*args, "--trials", "1"]) == 0  # a second command joins the same study (SQLite storage)
    return root / "study"


@pytest.mark.slow
def test_every_trial_is_a_run_directory(study_dir, capsys):
    runs = trial_run_dirs(study_dir)
    assert [r.name for r in runs] == ["trial-0000", "trial-0001", "trial-0002", "trial-0003"]
    for run in runs:
        trained = cs.load_run(run)
        filters = trained.model.spec.layers[0].args["filters"]
        assert 2 <= filters <= 8 and trained.history.epochs_run >= 1
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert len(study.trials) == 4


@pytest.mark.slow
def test_best_trial_retrains_from_its_written_spec(study_dir, tmp_path):
    best = json.loads((study_dir / "best.json").read_text())
    runs = {r.name: r for r in trial_run_dirs(study_dir)}
    best_run = runs[f"trial-{best['trial']:04d}"]
    recorded = cs.load_run(best_run).history.column("val_loss")
    assert best["val_loss"] == pytest.approx(min(recorded))
    assert best["train"]["model"] == str(study_dir / "best_spec.yaml")
    again = cs.train(**best["train"], out=tmp_path / "again", verbose=False)
    np.testing.assert_allclose(again.trained.history.column("val_loss"), recorded, rtol=1e-6)
    assert best["command"].startswith("convscope train --data ")


def test_parameters_are_named_by_layer():
    spec = cs.build(SMALL_SPEC, (8, 8, 1), 2).spec.to_dict()
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    chosen = draw(trial, spec, SearchSpace(filters=(4, 4), kernel_sizes=(5,), dropout=None), lr=1e-3, batch_size=32)
    assert set(trial.params) == {"conv2d.filters", "conv2d.kernel_size", "lr", "batch_size"}
    assert chosen.spec["layers"][0]["filters"] == 4 and chosen.spec["layers"][0]["kernel_size"] == 5
    assert chosen.spec["layers"][3]["rate"] == 0.2  # dropout not searched: the base spec's value


def test_a_callback_can_end_training_after_any_epoch():
    data = tiny_dataset()
    model = cs.build(SMALL_SPEC, data.input_shape, data.num_classes, seed=0)
    seen = []

    class StopAfterTwo(cs.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)
            self.model.stop_training = epoch == 1

    trained = cs.fit(model, data, epochs=5, validation_split=0.25, verbose=False, callbacks=[StopAfterTwo()])
    assert seen == [0, 1] and trained.history.epochs_run == 2


def test_bad_ranges_are_refused():
    with pytest.raises(UserError, match="dropout range"):
        SearchSpace(dropout=(0.2, 1.5))
    with pytest.raises(UserError, match="filters range"):
        SearchSpace(filters=(16, 8))


@pytest.mark.slow
def test_a_study_directory_expands_to_its_trials_for_compare(study_dir, tmp_path):
    from convscope.sweep import expand_study_dirs

    assert expand_study_dirs([study_dir, tmp_path]).here == [*trial_run_dirs(study_dir), tmp_path]
    with pytest.raises(UserError, match="not a sweep directory"):
        trial_run_dirs(tmp_path)


@pytest.mark.slow
def test_compare_command_shows_every_trial_of_a_study(study_dir, capsys):
    from convscope.cli import main

    assert main(["compare", str(study_dir)]) == 0
    table = capsys.readouterr().out
    for trial in trial_run_dirs(study_dir):
        assert trial.name in table


@pytest.mark.slow
def test_compare_of_a_study_ranks_by_its_objective_and_names_it(study_dir, capsys):
    import optuna

    assert main(["compare", str(study_dir)]) == 0
    text = capsys.readouterr().out
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{study_dir / 'study.db'}")
    finished = [t for t in study.trials if t.value is not None]
    order = [f"trial-{t.number:04d}" for t in sorted(finished, key=lambda t: t.value)]
    listed = [line.split()[0] for line in text.splitlines() if line.startswith("trial-")]
    assert listed[: len(order)] == order  # pruned trials report their last value too, so all are ranked
    best = study.best_trial
    assert (
        f"ranked by the sweep's objective, the lowest validation loss (val_loss): best trial-{best.number:04d} "
        f"({best.value:.4f})"
    ) in text
    assert "best test accuracy:" not in text  # the plain comparison's pick, which a study does not rank by


def test_the_objective_note_names_a_different_test_accuracy_winner():
    from convscope.report.compare import RunRow, notes
    from convscope.training.history import History

    def row(name, val_loss, accuracy):
        history = History([{"epoch": 1, "loss": 1.0, "val_loss": val_loss}])
        return RunRow(name, Path(name), "m", 1, 1, 1, 1.0, accuracy, 0.5, "d", history)

    said = notes([row("trial-0000", 0.20, 0.95), row("trial-0001", 0.30, 0.97)], by_objective=True)
    assert said == [
        "ranked by the sweep's objective, the lowest validation loss (val_loss): best trial-0000 (0.2000)",
        "note: trial-0001 has the highest test accuracy (0.9700), but a sweep chooses by validation loss, so that "
        "the test set stays unseen until the chosen model is measured.",
    ]


@pytest.mark.slow
def test_a_sweep_prints_one_line_per_trial_and_no_optuna_log_unless_verbose(tmp_path):
    data = tiny_dataset(120)
    np.savez(tmp_path / "tiny.npz", x=data.images, y=data.labels)
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(SMALL_SPEC))
    args = ["sweep", "--data", str(tmp_path / "tiny.npz"), "--model", str(tmp_path / "small.yaml"), "--epochs", "1"]
    args += ["--filters", "2,4", "--batch-sizes", "16", "--out", str(tmp_path / "s")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    quiet = subprocess.run(
        [sys.executable, "-m", "convscope", *args, "--trials", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "[I " not in quiet.stderr and "Trial 0 finished" not in quiet.stderr + quiet.stdout
    lines = [line for line in quiet.stdout.splitlines() if line.startswith("trial ") and ":" in line]
    assert [line.split(":")[0] for line in lines] == ["trial 0", "trial 1"]
    assert re.fullmatch(r"trial 0: val_loss \d+\.\d{4}  best so far  \(conv2d\.filters=\d, .*; \d+\.\d s\)", lines[0])
    loud = subprocess.run(
        [sys.executable, "-m", "convscope", *args, "--trials", "1", "--verbose"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert loud.returncode == 0 and "Trial 2 finished with value" in loud.stderr
    assert any(line.startswith("trial 2: ") for line in loud.stdout.splitlines())


def _progress_read_only(db):
    """The trials' states and whether the last one reported an epoch, read without Optuna: load_study on a
    file whose schema the sweep is still creating runs its own CREATE TABLE and races it ("table trials
    already exists"), so the poll opens the file read-only and treats a missing table as no progress."""
    if not db.exists():
        return [], False
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as connection:
            rows = connection.execute("SELECT trial_id, state FROM trials ORDER BY number").fetchall()
            if not rows:
                return [], False
            (reported,) = connection.execute(
                "SELECT COUNT(*) FROM trial_intermediate_values WHERE trial_id = ?", (rows[-1][0],)
            ).fetchone()
    except sqlite3.OperationalError:  # no such table yet, or the writer holds the lock
        return [], False
    return [state for _, state in rows], reported > 0


@pytest.mark.slow
def test_a_killed_sweep_rerun_with_the_same_command_continues_its_study(tmp_path):
    """SIGKILL in the middle of a trial; the same command again fails that trial, keeps the finished one
    and draws new parameters (before: the re-seeded sampler replayed trial 0's draw as trial 2)."""
    data = tiny_dataset(120)
    np.savez(tmp_path / "tiny.npz", x=data.images, y=data.labels)
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(SMALL_SPEC))
    study_dir = tmp_path / "study"
    command = [
        sys.executable,
        "-m",
        "convscope",
        "sweep",
        "--data",
        str(tmp_path / "tiny.npz"),
        "--model",
        str(tmp_path / "small.yaml"),
        "--epochs",
        "4",
        "--patience",
        "9",
        "--no-prune",
        "--filters",
        "2,4",
        "--batch-sizes",
        "16",
        "--trials",
        "2",
        "--out",
        str(study_dir),
    ]
    storage = f"sqlite:///{study_dir / 'study.db'}"

    def study():
        return optuna.load_study(study_name="study", storage=storage)

    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Kill once trial 0 has finished and trial 1 has reported an epoch (it has three more to go).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and first.poll() is None:
            states, reported = _progress_read_only(study_dir / "study.db")
            if states == ["COMPLETE", "RUNNING"] and reported:
                break
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read().decode()
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    before = study().trials
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    after = study().trials
    assert [t.state.name for t in after] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert after[0].params == before[0].params and after[0].value == before[0].value  # not repeated
    drawn = [json.dumps(t.params, sort_keys=True) for t in after]
    assert len(set(drawn)) == len(drawn), drawn  # no parameter set twice, the killed one included
    assert [r.name for r in trial_run_dirs(study_dir)] == ["trial-0000", "trial-0002", "trial-0003"]
