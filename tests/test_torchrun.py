"""torchrun across "machines" on one machine: two launchers form one job, a lost rank, a restarted group.

Every test here starts real torchrun launchers (`python -m torch.distributed.run`) on 127.0.0.1, as a
user would on two hosts; the data differs between the "machines" only where a test makes it differ."""

from __future__ import annotations

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

import convscope as cs
from convscope.training.distributed import _free_port
from synthetic import PLAIN_SPEC, tiny_dataset


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("torchrun")
    data = tiny_dataset(240)
    np.savez(root / "tiny.npz", x=data.images, y=data.labels)
    changed = data.images.copy()
    changed[7, 0, 0, 0] ^= 1  # one pixel of one image: another copy of "the same" file
    np.savez(root / "other.npz", x=changed, y=data.labels)
    (root / "plain.yaml").write_text(yaml.safe_dump(PLAIN_SPEC))
    # Epochs of about a second on 2 cores, so that a kill after epoch 2 lands while training goes on.
    longer = tiny_dataset(2400)
    np.savez(root / "longer.npz", x=longer.images, y=longer.labels)
    return root


def train_args(inputs: Path, out: Path, data: str = "tiny.npz", epochs: int = 3) -> list[str]:
    return [
        "-m",
        "convscope",
        "train",
        "--data",
        str(inputs / data),
        "--model",
        str(inputs / "plain.yaml"),
        "--epochs",
        str(epochs),
        "--patience",
        "9",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--no-report",
        "--quiet",
        "--out",
        str(out),
    ]


def torchrun(*flags: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *flags]


def node(rank: int, port: int, args: list[str], *flags: str) -> subprocess.Popen:
    command = torchrun(
        "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
        "--master-addr", "127.0.0.1", "--master-port", str(port), *flags, *args,
    )  # fmt: skip
    # Its own process group: a test can kill one "machine" (launcher and rank) at once.
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def rows(run: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in cs.load_run(run).history.rows]


@pytest.mark.ddp
@pytest.mark.slow
def test_two_nodes_form_one_job_equal_to_two_local_processes(inputs, tmp_path):
    local = tmp_path / "nproc2"
    done = subprocess.run(
        [sys.executable, *train_args(inputs, local), "--nproc", "2"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr

    out, port = tmp_path / "two-nodes", _free_port()
    launchers = [node(rank, port, train_args(inputs, out)) for rank in (0, 1)]
    printed = []
    for launcher in launchers:
        stdout, stderr = launcher.communicate(timeout=600)
        assert launcher.returncode == 0, stderr
        printed.append(stdout.strip())
    assert printed == [str(out), ""]  # node 0's rank 0 wrote (and printed) the run; node 1 wrote nothing
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial or resume folder
    two_nodes, two_processes = rows(out), rows(local)
    assert len(two_nodes) == 3
    for a, b in zip(two_nodes, two_processes):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-5, atol=1e-6)
    assert json.loads((out / "config.json").read_text())["fit"]["world_size"] == 2


@pytest.mark.ddp
@pytest.mark.slow
def test_a_rank_with_another_copy_of_the_data_is_refused_before_training(inputs, tmp_path):
    out, port = tmp_path / "run", _free_port()
    launchers = [node(0, port, train_args(inputs, out)), node(1, port, train_args(inputs, out, data="other.npz"))]
    errors = []
    for launcher in launchers:
        _stdout, stderr = launcher.communicate(timeout=600)
        assert launcher.returncode != 0
        errors.append(stderr)
    for stderr in errors:  # both machines say why, in one sentence (torchrun then adds its own failure report)
        said = [line for line in stderr.splitlines() if line.startswith("convscope train: error: ")]
        assert len(said) == 1 and "rank 1 on " in said[0] and "loaded other data than rank 0 on " in said[0], stderr
    mine = cs.data.dataset.fingerprint(cs.load(str(inputs / "tiny.npz")))
    theirs = cs.data.dataset.fingerprint(cs.load(str(inputs / "other.npz")))
    assert mine != theirs and f"fingerprint {theirs} against {mine}" in errors[0]
    assert not out.exists()


def _rank_pid(launcher_pid: int, rank: int) -> int | None:
    """The pid of the worker with RANK=`rank` that this launcher started (read from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), -1)
        if ppid == launcher_pid and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def _wait_for(predicate, process: subprocess.Popen, seconds: float = 600):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(
        f"gave up waiting: {process.poll()=} {process.stderr.read() if process.poll() is not None else ''}"
    )


@pytest.mark.ddp
@pytest.mark.slow
def test_an_elastic_group_restarts_after_a_rank_is_killed_and_resumes(inputs, tmp_path):
    out = tmp_path / "run"
    state = tmp_path / ".run.resume"
    args = train_args(inputs, out, data="longer.npz", epochs=6)
    launcher = subprocess.Popen(
        torchrun("--nproc-per-node", "2", "--max-restarts", "2", "--master-port", str(_free_port()), *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Once epoch 2 is saved on both ranks, rank 1 is in the middle of epoch 3 (or saving it): kill it.
        _wait_for(lambda: (state / "rank1-epoch0002.safetensors").is_file(), launcher)
        victim = _wait_for(lambda: _rank_pid(launcher.pid, 1), launcher)
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = launcher.communicate(timeout=600)
    finally:
        launcher.kill()
        launcher.wait()
    assert launcher.returncode == 0, stderr
    assert stdout.strip().splitlines()[-1] == str(out)
    trained = cs.load_run(out)
    assert trained.history.epochs_run == 6 and [r["epoch"] for r in trained.history.rows] == [1, 2, 3, 4, 5, 6]
    assert trained.history.resumed_from_epoch in (2, 3)  # the last epoch both ranks had saved
    assert not state.exists()


@pytest.mark.ddp
@pytest.mark.slow
def test_without_restarts_the_surviving_machine_stops_with_one_sentence(inputs, tmp_path):
    out, port = tmp_path / "run", _free_port()
    state = tmp_path / ".run.resume"
    args = train_args(inputs, out, data="longer.npz", epochs=30)
    launchers = [node(rank, port, args) for rank in (0, 1)]
    try:
        _wait_for(lambda: (state / "rank1-epoch0001.safetensors").is_file(), launchers[0])
        worker = _wait_for(lambda: _rank_pid(launchers[1].pid, 1), launchers[1])
        for pid in (launchers[1].pid, worker):  # the second machine is gone: its launcher and its rank
            os.kill(pid, signal.SIGKILL)
        _stdout, stderr = launchers[0].communicate(timeout=300)  # not the 30 epochs, nor torch's 30 minutes
    finally:
        for launcher in launchers:
            launcher.kill()
            launcher.wait()
    assert launchers[0].returncode != 0
    assert "rank 0 of 2 on " in stderr and "lost contact with another rank" in stderr, stderr[-3000:]
    assert "--resume" in stderr
    assert not out.exists() and any(state.glob("rank0-epoch*.safetensors"))  # what --resume continues from


def test_the_group_timeout_comes_from_the_environment():
    from convscope.errors import UserError
    from convscope.training.distributed import DEFAULT_TIMEOUT_SECONDS, group_timeout

    assert group_timeout({}) == DEFAULT_TIMEOUT_SECONDS == 300
    assert group_timeout({"CONVSCOPE_DIST_TIMEOUT": "12.5"}) == 12.5
    for bad in ("0", "-3", "nan", "soon"):
        with pytest.raises(UserError, match="CONVSCOPE_DIST_TIMEOUT"):
            group_timeout({"CONVSCOPE_DIST_TIMEOUT": bad})


def test_a_restarted_rank_resumes_only_a_run_with_saved_state(tmp_path):
    from convscope.cli.train import elastic_settings
    from convscope.errors import UserError
    from convscope.training.settings import TrainSettings

    settings = TrainSettings.of(None, {"out": str(tmp_path / "run")})
    with pytest.raises(UserError, match="give --out"):
        elastic_settings(TrainSettings(), {})
    assert not elastic_settings(settings, {"TORCHELASTIC_RESTART_COUNT": "0"}).resume
    assert not elastic_settings(settings, {"TORCHELASTIC_RESTART_COUNT": "1"}).resume  # nothing saved yet
    (tmp_path / ".run.resume").mkdir()
    (tmp_path / ".run.resume" / "settings.json").write_text("{}")
    assert elastic_settings(settings, {"TORCHELASTIC_RESTART_COUNT": "1"}).resume
    assert not elastic_settings(settings, {}).resume  # a first start never resumes by itself


def test_the_fingerprint_sees_one_changed_pixel_and_a_streamed_copy_reads_alike(tmp_path):
    from convscope.data.dataset import fingerprint

    data = tiny_dataset(300)
    changed = data.images.copy()
    changed[150, 3, 3, 0] ^= 4
    assert fingerprint(data) == fingerprint(tiny_dataset(300))
    assert fingerprint(data) != fingerprint(cs.Dataset(changed, data.labels, data.class_names))
    np.save(tmp_path / "x.npy", data.images)
    np.save(tmp_path / "x_labels.npy", data.labels)
    streamed = cs.stream(str(tmp_path / "x.npy"))
    assert fingerprint(streamed) == fingerprint(cs.stream(str(tmp_path / "x.npy")))
