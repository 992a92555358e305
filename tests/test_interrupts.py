"""Ctrl-C, twice in quick succession, during training: one sentence and a clean exit, never a death by signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from synthetic import tiny_dataset

pytestmark = pytest.mark.slow


def test_two_ctrl_c_50_ms_apart_end_with_a_sentence(tmp_path):
    data = tiny_dataset(n=200)
    np.savez(tmp_path / "tiny.npz", x=data.images[..., 0], y=data.labels)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "convscope",
            "train",
            "--data",
            str(tmp_path / "tiny.npz"),
            "--model",
            "mlp",
            "--epochs",
            "500",
            "--patience",
            "500",
            "--no-report",
            "--out",
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for line in proc.stdout:
        if line.startswith("Epoch 2/"):  # the first epoch is complete
            break
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    # Wherever the two signals land: saved cleanly (0), or one sentence and 130; never -2, never a traceback.
    assert proc.returncode in (0, 130), (proc.returncode, err)
    assert "Traceback" not in err
    if proc.returncode == 130:
        assert err.strip().endswith("interrupted.") and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "run").exists()  # nothing half-written
    else:
        assert (tmp_path / "run" / "model.safetensors").is_file()
