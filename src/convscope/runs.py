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
so a failed or interrupted write never leaves a half-written run behind. What the three JSON files
hold, and how each is checked when read back, is `record.py`'s.
"""

from __future__ import annotations

import csv
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

from .checks import cut, quote
from .data.dataset import Dataset
from .data.formats.arrays import check_npy_header
from .data.framing import InputContract, learn_contract, unframed
from .data.scaling import MinMaxScaler
from .errors import UserError
from .evaluation.evaluate import EvaluationResult
from .i18n import _
from .models.build import check_params, plan_network
from .models.network import Network
from .models.spec import parse_spec
from .record import (
    ARCHITECTURE_FORMAT,
    Architecture,
    Metrics,
    RunConfig,
    is_finite,
    is_range,
    read_record,
    write_json,
)
from .record import read_json as read_json  # the CLI's --config and --resume read settings files with it
from .training.history import History
from .training.trained_model import TrainedModel

CONFIG, ARCHITECTURE, WEIGHTS = "config.json", "architecture.json", "model.safetensors"
HISTORY, METRICS, TEST_SET, TEST_IMAGES = "history.csv", "metrics.json", "test_set.npz", "test_images.npy"


def default_run_dir(model_name: str, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = Path(root) / f"{stamp}-{model_name}"
    n = 2
    while candidate.exists():
        candidate = Path(root) / f"{stamp}-{model_name}-{n}"
        n += 1
    return candidate


def check_out_writable(out: str | Path | None, root: str | Path = "runs") -> None:
    """Refuse a run directory that cannot be written, before any data is read or any epoch runs.

    `out` None means a fresh `root/<timestamp>-<model>`, so `root` is checked instead. The write
    itself stays atomic (`write_atomically`); this only moves the foreseeable failures to the start.
    """
    check_writable(Path(root) / "x" if out is None else out, "--out", may_exist=False)


def check_writable(path: str | Path, flag: str, *, may_exist: bool = True) -> None:
    """Refuse an output path (`--out`, `--save`) that cannot be created: it exists (unless
    `may_exist`), is a dangling link, lies under a file, or its folder refuses writes."""
    target = Path(path)
    if target.is_symlink() and not target.exists():
        raise UserError(
            _("{flag} {target} already exists (a dangling symbolic link); choose a new path.").format(
                flag=flag, target=target
            )
        )
    if target.exists() and not may_exist:
        raise UserError(
            (
                _("{flag} {target} already exists (a directory); choose a new directory.")
                if target.is_dir()
                else _("{flag} {target} already exists (a file); choose a new directory.")
            ).format(flag=flag, target=target)
        )
    ancestor = target if target.is_dir() else target.parent
    while not ancestor.exists():
        if ancestor.is_symlink():
            raise UserError(
                _("{flag} {target}: {ancestor} is a dangling symbolic link.").format(
                    flag=flag, target=target, ancestor=ancestor
                )
            )
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(
            _("{flag} {target} lies under {ancestor}, which is a file, not a directory.").format(
                flag=flag, target=target, ancestor=ancestor
            )
        )
    try:  # a real probe: permission bits say nothing about root, read-only mounts or full quotas
        os.rmdir(tempfile.mkdtemp(prefix=".convscope-probe-", dir=ancestor))
    except OSError as exc:
        raise UserError(
            _("{flag} {target}: the folder {ancestor} cannot be written to ({strerror}).").format(
                flag=flag, target=target, ancestor=ancestor, strerror=exc.strerror
            )
        ) from None


def write_atomically(final: str | Path, fill: Callable[[Path], None]) -> Path:
    """Create directory `final` by letting `fill` write into a temporary sibling, then renaming it."""
    final = Path(final)
    if final.exists():
        raise UserError(
            _("run directory {path} already exists, and a run is never overwritten; save it under a new name.").format(
                path=final
            )
        )
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
    """Write the run directory for a trained model (and its test evaluation) atomically.

    `config`: config.json's sections (`RunConfig.to_dict()`, or an importer's own); None, from Python:
    the data `fit` trained on and the model's name. `save_run` adds the fit (`trained.config`)."""
    model = trained.model
    if not isinstance(model, Network):
        raise UserError(
            _("only models built from a preset or spec can be saved as a run (their architecture is JSON).")
        )
    if trained.history.epochs_run == 0 and not (config or {}).get("imported"):  # imported: trained elsewhere
        raise UserError(_("the model has not completed an epoch of training; there is no run to save."))
    if config is None:  # saved from Python: still name the data, its split and the model it was trained with
        config = _python_config(trained, model.spec.name, len(evaluation.labels) if evaluation is not None else None)
    architecture = Architecture(
        model.spec.to_dict(),
        tuple(trained.input_shape),
        tuple(trained.class_names),
        trained.scaler.to_dict(),
        trained.input_contract.to_dict() if trained.input_contract is not None else None,
    )
    history = trained.history
    metrics = Metrics(
        history.epochs_run,
        history.ending(),
        sum(history.column("seconds")),
        evaluation.metrics() if evaluation is not None else {},
    )

    def fill(tmp: Path) -> None:
        write_json(tmp / ARCHITECTURE, architecture.to_dict())
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"format": ARCHITECTURE_FORMAT})
        (tmp / HISTORY).write_text(history.to_csv())
        write_json(tmp / CONFIG, {**(config or {}), "fit": trained.config})
        if evaluation is not None:
            _save_images(tmp / TEST_IMAGES, evaluation.images)
            np.savez_compressed(
                tmp / TEST_SET, labels=evaluation.labels, probabilities=evaluation.probabilities.astype(np.float32)
            )
        write_json(tmp / METRICS, metrics.to_dict())
        if extra_files is not None:
            extra_files(tmp)

    path = write_atomically(out, fill)
    trained.path = path
    return path


def _python_config(trained: TrainedModel, model_name: str, test_size: int | None) -> dict[str, Any]:
    """config.json for a model saved from Python: the data `fit` recorded, counted as a run counts it."""
    if trained.data is None:  # not trained by `fit` here (imported, or built by hand): only the sizes are known
        data: dict[str, Any] = {"train_size": 0, **({"test_size": test_size} if test_size is not None else {})}
        return {"data": data, "model": {"name": model_name, "source": model_name}}
    return RunConfig(trained.data.before_cut(test_size), model_name, model_name).to_dict()


def load_run(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """The trained model of a run directory, ready to predict."""
    path = Path(path)
    if not (path / WEIGHTS).is_file() or not (path / ARCHITECTURE).is_file():
        raise UserError(
            _("{path} is not a convscope run directory (it needs {WEIGHTS} and {ARCHITECTURE}).").format(
                path=path, WEIGHTS=WEIGHTS, ARCHITECTURE=ARCHITECTURE
            )
        )
    arch = read_architecture(path)
    spec = parse_spec(arch.spec, source=str(path / ARCHITECTURE))
    model = plan_network(spec, arch.input_shape, arch.num_classes)  # refuses absurd sizes first
    check_params(model)
    model = Network(spec, arch.input_shape, arch.num_classes)
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise UserError(
            _("{path} cannot be read as weights for this architecture: {reason}.").format(
                path=path / WEIGHTS, reason=cut(str(exc), 200)
            )
        ) from None
    config = read_record(path / CONFIG)
    metrics = read_record(path / METRICS)
    ending = {k: metrics[k] for k in History().ending() if k in metrics}
    history = _read_history(path / HISTORY, ending) if (path / HISTORY).is_file() else History()
    device = torch.device(device)
    scaler = MinMaxScaler(**arch.scaler)
    return TrainedModel(
        model.to(device).eval(),
        scaler,
        arch.class_names,
        arch.input_shape,  # type: ignore[arg-type]  # (H, W, C), or (features,) for a dense-only model
        history,
        config.get("fit") or {},
        device,
        path,
        input_contract=stored_contract(path, arch, scaler),
    )


def read_architecture(path: Path) -> Architecture:
    """The run's architecture.json, every field the loaders use checked (`Architecture.read`)."""
    return Architecture.read(path / ARCHITECTURE)


def _read_history(path: Path, ending: dict[str, Any]) -> History:
    try:
        history = History.from_csv(path.read_bytes().decode("utf-8"), **ending)
    except UnicodeDecodeError as exc:
        raise UserError(
            _("{path}: not UTF-8 text (byte {start} cannot be decoded); the run directory is damaged.").format(
                path=path, start=exc.start
            )
        ) from None
    except (ValueError, TypeError, csv.Error) as exc:
        raise UserError(
            _("{path}: not a history table convscope wrote ({text}).").format(path=path, text=cut(str(exc), 120))
        ) from None
    epochs = [row.get("epoch") for row in history.rows]
    if epochs != list(range(1, len(epochs) + 1)):  # every row numbered 1, 2, ...: the curves are drawn against it
        raise UserError(_("{path}: its epoch column is not 1, 2, ...; the run directory is damaged.").format(path=path))
    return history


def _checked_contract(file: Path, value: Any) -> InputContract:
    """architecture.json's input_contract, every field the framing code uses checked (a damaged run says so)."""

    def share(key: str, default: float, low_open: bool = False) -> bool:  # a fraction of the frame or the range
        v = value.get(key, default)
        return is_finite(v) and (v > 0 if low_open else v >= 0) and v <= 1

    fractions = value.get("fraction_range", (0.0, 1.0)) if isinstance(value, dict) else None
    ok = (
        isinstance(value, dict)
        and value.get("background") in (None, "dark", "light")
        and value.get("framing") in ("fill", "fit", "none")
        and value.get("centre", "mass") in ("mass", "box")
        and share("threshold", 0.5)
        and share("fraction", 1.0, low_open=True)
        and share("offset_limit", 0.0)
        and is_range(value.get("pixel_range"))
        and isinstance(fractions, (list, tuple))
        and len(fractions) == 2
        and all(is_finite(f) and 0 <= f <= 1 for f in fractions)
        and fractions[0] <= fractions[1]
        and isinstance(value.get("source", ""), str)
    )
    if not ok or "threshold" not in value:
        raise UserError(
            _(
                "{file}: 'input_contract' holds {quote}, which convscope never writes; the run directory is damaged."
            ).format(file=file, quote=quote(value))
        )
    return InputContract.from_dict(value)


def stored_contract(path: Path, arch: Architecture, scaler: MinMaxScaler) -> InputContract:
    """The run's input contract; runs saved before contracts existed learn it from their test images, and say so."""
    if arch.input_contract is not None:
        return _checked_contract(path / ARCHITECTURE, arch.input_contract)
    pixel_range = (scaler.minimum, scaler.maximum)
    if has_test_set(path):
        images = np.load(path / TEST_IMAGES, mmap_mode="r", allow_pickle=False)
        return learn_contract(
            images,
            pixel_range,
            source="this run stored no contract (made before convscope learned "
            "them): learned from its saved test images",
        )
    return unframed(
        pixel_range, "this run stored no contract and kept no test images: images are resized whole and never inverted"
    )


def load_test_set(path: str | Path) -> tuple[Dataset, np.ndarray]:
    """The run's test images (memory-mapped) and labels, and the probabilities the model gave them when saved."""
    path = Path(path)
    if not has_test_set(path):
        raise UserError(
            _(
                "{path} has no {TEST_SET} and {TEST_IMAGES}; evaluate it on data with `convscope evaluate {path} --data ...`."
            ).format(path=path, TEST_SET=TEST_SET, TEST_IMAGES=TEST_IMAGES)
        )
    arch = read_architecture(path)
    names = arch.class_names
    with open(path / TEST_IMAGES, "rb") as f:
        check_npy_header(f, (path / TEST_IMAGES).stat().st_size, str(path / TEST_IMAGES))
    try:
        images = np.load(path / TEST_IMAGES, mmap_mode="r", allow_pickle=False)
        with np.load(path / TEST_SET, allow_pickle=False) as npz:
            labels, probabilities = npz["labels"], npz["probabilities"]
    except Exception as exc:  # noqa: BLE001 - numpy and zipfile raise many types on damaged files
        raise UserError(
            _("{path}: its test set cannot be read ({text}); the run directory is damaged.").format(
                path=path, text=cut(str(exc), 120)
            )
        ) from None
    n = len(images) if images.ndim else 0
    if (
        images.ndim != 4
        or list(images.shape[1:]) != list(arch.input_shape)
        or labels.shape != (n,)
        or labels.dtype.kind not in "iu"
        or probabilities.shape != (n, len(names))
        or (n and not 0 <= int(labels.min()) <= int(labels.max()) < len(names))
    ):
        raise UserError(
            _(
                "{path}: its test set does not match the run: images {shape}, labels {labels}, probabilities {probabilities} for {count} classes and input {input}."
            ).format(
                path=path,
                shape=images.shape,
                labels=labels.shape,
                probabilities=probabilities.shape,
                count=len(names),
                input=arch.input_shape,
            )
        )
    data = Dataset(images, labels.astype(np.int64), names, f"{path} (test split)")
    return data, probabilities


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
