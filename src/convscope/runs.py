"""The run directory: written atomically, read back without pickle.

    runs/20261127-221500-cnn/
      config.json         data, model and fit settings: enough to reproduce the run
      architecture.json   the normalised model spec, input shape, class names, scaling statistics
      model.safetensors   the weights
      history.csv         one row per epoch
      metrics.json        test loss/accuracy, per-class scores, confusion matrix, epochs, timing
      test_images.npy     the test images (N, H, W, C), read back memory-mapped
      test_set.npz        their labels and predicted probabilities (allow_pickle=False)

Everything is written into a hidden sibling directory first and renamed into place at the end,
so a failed or interrupted write never leaves a half-written run behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .data.dataset import Dataset
from .data.scaling import MinMaxScaler
from .errors import UserError
from .evaluation.evaluate import EvaluationResult
from .models.network import Network
from .models.spec import parse_spec
from .training.history import History
from .training.trained_model import TrainedModel

CONFIG, ARCHITECTURE, WEIGHTS = "config.json", "architecture.json", "model.safetensors"
HISTORY, METRICS, TEST_SET, TEST_IMAGES = "history.csv", "metrics.json", "test_set.npz", "test_images.npy"
ARCHITECTURE_FORMAT = "convscope-architecture/1"


def default_run_dir(model_name: str, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = Path(root) / f"{stamp}-{model_name}"
    n = 2
    while candidate.exists():
        candidate = Path(root) / f"{stamp}-{model_name}-{n}"
        n += 1
    return candidate


def write_atomically(final: str | Path, fill: Callable[[Path], None]) -> Path:
    """Create directory `final` by letting `fill` write into a temporary sibling, then renaming it."""
    final = Path(final)
    if final.exists():
        raise UserError(f"run directory {final} already exists; choose another --out.")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        fill(tmp)
        _permissions_as_umask_allows(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _permissions_as_umask_allows(directory: Path) -> None:
    """mkdtemp makes 0700 directories (and some writers 0600 files); a finished run is an ordinary one."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for path in directory.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def save_run(
    trained: TrainedModel,
    out: str | Path,
    evaluation: EvaluationResult | None = None,
    config: dict[str, Any] | None = None,
    extra_files: Callable[[Path], None] | None = None,
) -> Path:
    """Write the run directory for a trained model (and its test evaluation) atomically."""
    model = trained.model
    if not isinstance(model, Network):
        raise UserError("only models built from a preset or spec can be saved as a run (their architecture is JSON).")
    if trained.history.epochs_run == 0:
        raise UserError("the model has not completed an epoch of training; there is no run to save.")
    if config is None:  # saved from Python: still name the data and the model it was trained with
        config = {"data": dict(trained.data), "model": {"name": model.spec.name, "source": model.spec.name}}

    def fill(tmp: Path) -> None:
        architecture = {
            "format": ARCHITECTURE_FORMAT,
            "spec": model.spec.to_dict(),
            "input_shape": list(trained.input_shape),
            "num_classes": len(trained.class_names),
            "class_names": list(trained.class_names),
            "scaler": trained.scaler.to_dict(),
        }
        _write_json(tmp / ARCHITECTURE, architecture)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"format": ARCHITECTURE_FORMAT})
        (tmp / HISTORY).write_text(trained.history.to_csv())
        _write_json(tmp / CONFIG, {**(config or {}), "fit": trained.config})
        metrics = {
            "epochs_run": trained.history.epochs_run,
            **trained.history.ending(),
            "train_seconds": round(sum(trained.history.column("seconds")), 3),
        }
        if evaluation is not None:
            metrics = {**evaluation.metrics(), **metrics}
            _save_images(tmp / TEST_IMAGES, evaluation.images)
            np.savez_compressed(
                tmp / TEST_SET, labels=evaluation.labels, probabilities=evaluation.probabilities.astype(np.float32)
            )
        _write_json(tmp / METRICS, metrics)
        if extra_files is not None:
            extra_files(tmp)

    path = write_atomically(out, fill)
    trained.path = path
    return path


def load_run(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """The trained model of a run directory, ready to predict."""
    path = Path(path)
    if not (path / WEIGHTS).is_file() or not (path / ARCHITECTURE).is_file():
        raise UserError(f"{path} is not a convscope run directory (it needs {WEIGHTS} and {ARCHITECTURE}).")
    arch = read_json(path / ARCHITECTURE)
    if arch.get("format") != ARCHITECTURE_FORMAT:
        raise UserError(f"{path / ARCHITECTURE}: unknown format {arch.get('format')!r}, expected {ARCHITECTURE_FORMAT}.")
    spec = parse_spec(arch["spec"], source=str(path / ARCHITECTURE))
    model = Network(spec, tuple(arch["input_shape"]), int(arch["num_classes"]))
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise UserError(f"{path / WEIGHTS} cannot be read as weights for this architecture: {exc}.") from None
    config = read_json(path / CONFIG) if (path / CONFIG).is_file() else {}
    metrics = read_json(path / METRICS) if (path / METRICS).is_file() else {}
    ending = {k: metrics[k] for k in History().ending() if k in metrics}
    history = History.from_csv((path / HISTORY).read_text(), **ending) if (path / HISTORY).is_file() else History()
    device = torch.device(device)
    return TrainedModel(
        model.to(device).eval(),
        MinMaxScaler(**arch["scaler"]),
        tuple(arch["class_names"]),
        tuple(arch["input_shape"]),
        history,
        config.get("fit", {}),
        device,
        path,
    )


def load_test_set(path: str | Path) -> tuple[Dataset, np.ndarray]:
    """The run's test images (memory-mapped) and labels, and the probabilities the model gave them when saved."""
    path = Path(path)
    if not has_test_set(path):
        raise UserError(
            f"{path} has no {TEST_SET} and {TEST_IMAGES}; evaluate it on data with `convscope evaluate {path} --data ...`."
        )
    arch = read_json(path / ARCHITECTURE)
    images = np.load(path / TEST_IMAGES, mmap_mode="r", allow_pickle=False)
    with np.load(path / TEST_SET, allow_pickle=False) as npz:
        data = Dataset(images, npz["labels"].astype(np.int64), tuple(arch["class_names"]), f"{path} (test split)")
        return data, npz["probabilities"]


def has_test_set(path: str | Path) -> bool:
    """Whether the run directory kept its test split (runs saved without an evaluation have none)."""
    return (Path(path) / TEST_SET).is_file() and (Path(path) / TEST_IMAGES).is_file()


def _save_images(path: Path, images) -> None:
    """Streamed test images (`data.streaming.LazyImages`) are copied chunk by chunk, never all in memory."""
    if isinstance(images, np.ndarray):
        np.save(path, images, allow_pickle=False)
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=images.dtype, shape=images.shape)
    start = 0
    for chunk in images.chunks():
        out[start : start + len(chunk)] = chunk
        start += len(chunk)
    out.flush()
    del out  # closes the map before the directory is renamed


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}.") from None


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")
