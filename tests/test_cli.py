"""The CLI contract: train writes a complete run; evaluate/predict/summary reuse it; bad input exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convscope.cli import main
from synthetic import tiny_dataset, write_tiny_npz

SRC = Path(__file__).resolve().parents[1] / "src"


def convscope(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "convscope", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    return write_tiny_npz(tmp_path_factory.mktemp("data"), n=200)


@pytest.fixture(scope="module")
def tiny_run(tiny_npz, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("runs") / "tiny-run"
    result = convscope(
        "train",
        "--data",
        str(tiny_npz),
        "--model",
        "cnn",
        "--epochs",
        "2",
        "--class-names",
        "top,bottom",
        "--out",
        str(out),
    )
    return out, result


@pytest.mark.slow
def test_train_writes_a_complete_run_directory(tiny_run):
    out, result = tiny_run
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} >= {
        "config.json",
        "architecture.json",
        "model.safetensors",
        "history.csv",
        "metrics.json",
        "test_set.npz",
        "test_images.npy",
    }
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "test_loss",
        "test_accuracy",
        "per_class",
        "confusion_matrix",
        "epochs_run",
        "best_epoch",
        "train_seconds",
    ):
        assert key in metrics
    assert metrics["epochs_run"] == 2
    assert [row["class"] for row in metrics["per_class"]] == ["top", "bottom"]
    assert np.array(metrics["confusion_matrix"]).sum() == 40  # 20% of 200, stratified
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy") and len(history) == 3
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["test_split"] == 0.2 and config["fit"]["batch_size"] == 32
    assert config["model"]["source"] == "cnn"
    assert not any(p.suffix in (".pkl", ".pt", ".pickle") for p in out.iterdir())


@pytest.mark.slow
def test_train_prints_data_summary_model_summary_progress_and_metrics(tiny_run):
    _, result = tiny_run
    out = result.stdout
    assert "images:      200" in out
    assert "Total params: 28,898" in out  # cnn on 12x12x1, 2 classes: 28,320 + Dense(3*3*32 -> 2) = 578
    assert "Epoch 1/2" in out and "val_accuracy:" in out
    assert "test accuracy" in out and "run saved to" in out


@pytest.mark.slow
def test_evaluate_and_predict_reuse_the_run(tiny_run, tiny_npz, tmp_path, capsys):
    out, _ = tiny_run
    assert main(["evaluate", str(out), "--json"]) == 0
    saved = json.loads((out / "metrics.json").read_text())
    again = json.loads(capsys.readouterr().out)
    assert again["test_accuracy"] == pytest.approx(saved["test_accuracy"])
    assert again["test_loss"] == pytest.approx(saved["test_loss"], rel=1e-5)

    assert main(["evaluate", str(out), "--data", str(tiny_npz)]) == 0
    assert "on 200 images" in capsys.readouterr().out

    data = tiny_dataset(n=4, size=12)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(data.images[i, :, :, 0]).resize((48, 48)).save(paths[-1])  # any size is resized
    assert main(["predict", str(out), *map(str, paths), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2
    for row in rows:
        assert set(row["probabilities"]) == {"top", "bottom"}
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == row["top"][0]["label"]


def test_summary_command_prints_formulas(capsys):
    assert main(["summary", "cnn", "--input-shape", "32,32,1"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 48,810" in out and "ceil(32 / 1) = 32" in out
    assert main(["summary", "mlp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_params"] == 271_370


def corrupt_files(tmp: Path) -> dict[str, tuple[list[str], str]]:
    bad_npz = tmp / "broken.npz"
    bad_npz.write_bytes(b"PK\x03\x04 this is not a zip archive")
    nan = tmp / "nan.npz"
    images = np.zeros((20, 8, 8), np.float32)
    images[3, 2, 2] = np.nan
    np.savez(nan, x=images, y=np.arange(20) % 2)
    mismatch = tmp / "mismatch.npz"
    np.savez(mismatch, x=np.zeros((20, 8, 8), np.uint8), y=np.arange(19) % 2)
    spec = tmp / "bad.yaml"
    spec.write_text(
        "layers:\n  - Conv2D: {filters: 4, kernel_size: 31}\n  - Flatten: {}\n  - Dense: {units: num_classes}\n"
    )
    return {
        "missing": (["--data", str(tmp / "nope.npz")], "nope.npz"),
        "corrupt": (["--data", str(bad_npz)], "broken.npz"),
        "nan": (["--data", str(nan)], "nan.npz"),
        "mismatch": (["--data", str(mismatch)], "mismatch.npz"),
        "spec": (["--model", str(spec)], "layer 'conv2d' (Conv2D)"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing", "corrupt", "nan", "mismatch", "spec"])
def test_bad_input_exits_2_with_one_sentence_and_no_run_directory(case, tmp_path):
    args, named = corrupt_files(tmp_path)[case]
    runs = tmp_path / "runs"
    result = convscope("train", *args, "--epochs", "1", "--out", str(runs / "r"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert not (runs / "r").exists()
    assert not runs.exists() or not any(runs.iterdir())  # no half-written temporary directory either


@pytest.mark.slow
def test_existing_out_directory_is_refused(tiny_run, tiny_npz):
    out, _ = tiny_run
    assert main(["train", "--data", str(tiny_npz), "--epochs", "1", "--out", str(out)]) == 2


@pytest.mark.slow
def test_run_directory_permissions_follow_the_umask(tiny_run):
    out, _ = tiny_run
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (out / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def test_failure_while_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    import convscope.runs as runs

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runs, "save_file", explode)
    data = tiny_dataset(n=60, size=8)
    np.savez(tmp_path / "d.npz", x=data.images, y=data.labels)
    with pytest.raises(OSError):
        main(
            [
                "train",
                "--data",
                str(tmp_path / "d.npz"),
                "--model",
                "mlp",
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "runs" / "x"),
                "--quiet",
            ]
        )
    assert list((tmp_path / "runs").iterdir()) == []


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--epochs", "0"])
    assert exit_info.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


@pytest.mark.slow
def test_starting_the_cli_does_not_load_matplotlib_or_the_server_stack():
    """Only drawing needs matplotlib (about 0.3 s to import), only `serve` the web stack, only `.mat` files
    scipy and h5py, only `export` onnx; the embedded digits need neither mlxtend nor pandas."""
    heavy = ("matplotlib", "fastapi", "optuna", "scipy", "h5py", "onnx", "onnxruntime", "mlxtend", "pandas", "sklearn")
    probe = f"import sys, convscope, convscope.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert loaded.stdout.strip() == "[]", loaded.stderr
