"""Sweep workers sharing one study on a real PostgreSQL server (tests/postgres.py starts one per session).

Several `convscope sweep` processes at once stand in for several machines: they share nothing but the
storage URL and the study name (and, in one test, a folder, as machines sharing a network drive would)."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

optuna = pytest.importorskip("optuna")  # the sweep extra

from convscope.cli import main  # noqa: E402
from convscope.sweep import engine_url, trial_run_dirs  # noqa: E402
from postgres import create_database  # noqa: E402
from synthetic import SMALL_SPEC, tiny_dataset  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FINISHED = ("COMPLETE", "PRUNED")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pg-sweep")
    data = tiny_dataset(200)
    np.savez(root / "tiny.npz", x=data.images, y=data.labels)
    (root / "small.yaml").write_text(yaml.safe_dump(SMALL_SPEC))
    return root


def command(inputs: Path, out: Path, url: str, *extra: str, trials: int = 2, epochs: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "convscope",
        "sweep",
        "--data",
        str(inputs / "tiny.npz"),
        "--model",
        str(inputs / "small.yaml"),
        "--epochs",
        str(epochs),
        "--patience",
        "9",
        "--filters",
        "2,8",
        "--batch-sizes",
        "16,32",
        "--trials",
        str(trials),
        "--out",
        str(out),
        "--storage",
        url,
        "--study-name",
        "shared",
        *extra,
    ]


def start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err
    return out


@functools.cache
def storage(url: str):
    """One storage, so one connection pool, per database for the whole module: a storage made per poll keeps
    its connections open until it is collected, and the server refuses clients past max_connections."""
    return optuna.storages.RDBStorage(engine_url(url))


def load(url: str):
    return optuna.load_study(study_name="shared", storage=storage(url))


def params_key(trial) -> str:
    return json.dumps(trial.params, sort_keys=True)


def test_three_workers_run_every_trial_once_and_a_killed_one_leaves_the_study_resumable(postgres, inputs, tmp_path):
    url = create_database(postgres, "three")
    out = tmp_path / "study"  # one folder for all three, as on a shared drive
    cmd = command(inputs, out, url, trials=3, epochs=3)
    workers = [start(cmd) for _ in range(3)]
    victim = workers[1]
    try:
        # Kill the second worker once one of its trials has reported an epoch (two more to go).
        deadline, killed = time.monotonic() + 600, None
        while time.monotonic() < deadline and victim.poll() is None and killed is None:
            try:
                trials = load(url).get_trials(deepcopy=False)
            except KeyError:  # the study is still being created
                trials = []
            for t in trials:
                worker = t.user_attrs.get("worker") or {}
                if worker.get("pid") == victim.pid and t.state.name == "RUNNING" and t.intermediate_values:
                    os.kill(victim.pid, signal.SIGKILL)
                    killed = t.number
                    break
            time.sleep(0.1)
        assert killed is not None, victim.communicate()[1]
        victim.wait()
        for worker in (workers[0], workers[2]):
            finish(worker)  # the other two ran all their trials
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    # Still RUNNING, unless a survivor started a trial more than the heartbeat's grace period after the kill
    # (a slow machine), which fails it as a trial of a machine gone silent.
    assert load(url).trials[killed].state.name in ("RUNNING", "FAIL")

    finish(start(command(inputs, out, url, trials=1, epochs=3)))  # the same command again joins and resumes
    trials = load(url).trials
    assert trials[killed].state.name == "FAIL"
    finished = [t for t in trials if t.state.name in FINISHED]
    assert len(finished) == len(trials) - 1 >= 3 + 3 + 1  # two whole workers, the resumed one, and the victim's
    assert len({params_key(t) for t in trials}) == len(
        trials
    )  # no parameter set drawn twice, the killed one's included
    pids = {(t.user_attrs["worker"]["pid"]) for t in finished}
    assert len(pids) >= 3  # the trials were shared out among the workers
    # Each finished trial is exactly one run directory, named by its study-wide number: no two workers collided.
    assert [r.name for r in trial_run_dirs(out)] == [f"trial-{t.number:04d}" for t in finished]
    best = json.loads((out / "best.json").read_text())
    assert best["trial"] == load(url).best_trial.number


def test_two_machines_prune_against_each_other_and_see_the_same_best(postgres, inputs, tmp_path, capsys):
    url = create_database(postgres, "two")
    first, second = tmp_path / "machine-a", tmp_path / "machine-b"
    # Two workers at once, each with its own folder.
    workers = [start(command(inputs, folder, url, trials=2, epochs=3)) for folder in (first, second)]
    for worker in workers:
        finish(worker)
    study = load(url)
    assert len(study.trials) == 4 and len({params_key(t) for t in study.trials}) == 4
    # Each worker's best.json names a finished trial with the value the storage holds; the one written
    # last (after every trial) names the study's best.
    written = sorted((folder / "best.json" for folder in (first, second)), key=lambda p: p.stat().st_mtime_ns)
    for path in written:
        best = json.loads(path.read_text())
        assert best["val_loss"] == study.trials[best["trial"]].value
    assert json.loads(written[-1].read_text())["trial"] == study.best_trial.number

    # A third worker whose learning rate cannot learn in time is pruned before its last epoch: against the
    # median of the other machines' trials, read from the storage (this worker has run none of its own).
    third = tmp_path / "machine-c"
    finish(start(command(inputs, third, url, "--lr", "1e-7,1e-7", trials=1, epochs=3)))
    last = load(url).trials[-1]
    assert last.state.name == "PRUNED" and max(last.intermediate_values) < 3
    assert (third / "trials" / f"trial-{last.number:04d}").is_dir()  # a pruned trial still leaves its run

    # `compare` reads the study from its URL: the trials of all three folders (all on this machine here).
    assert main(["compare", url, "--study-name", "shared"]) == 0
    table = capsys.readouterr().out
    for t in load(url).trials:
        assert f"trial-{t.number:04d}" in table

    # A trial whose run directory is not on this machine (moved here, as if written by another one) is left
    # out of the table and named, with the host its worker recorded.
    gone = load(url).trials[0]
    Path(gone.user_attrs["run_dir"]).rename(tmp_path / "moved-away")
    assert main(["compare", url, "--study-name", "shared"]) == 0
    captured = capsys.readouterr()
    assert f"trial-{gone.number:04d}" not in captured.out
    host = gone.user_attrs["worker"]["host"]
    assert f"1 trial is not in the table: its run directory is on another machine ({host})." in captured.err


def test_without_a_study_name_a_shared_storage_is_refused(postgres, inputs, capsys):
    url = postgres.url()
    code = main(["sweep", "--data", str(inputs / "tiny.npz"), "--storage", url, "--trials", "1"])
    assert code == 2
    assert "--study-name" in capsys.readouterr().err
