"""What the server does with a request once it is parsed, with no HTTP in it.

`ServedModel` is a loaded run plus what preprocessing needs to know about it. `run_jobs` is what
the batcher runs on a batch of jobs (one image each): every image is decoded and preprocessed on
its own (a bad one fails alone), the good ones go through one forward pass of the served engine,
and each job gets its response dictionary. The `torch` engine is `TrainedModel.predict_proba`,
and feature maps come from `evaluation.inspection.feature_maps`: the same code paths as the CLI
and the report.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..data.framing import Framing
from ..errors import UserError
from ..evaluation.inspection import feature_maps
from ..export.contract import run_contract
from ..i18n import _, speaking
from ..models.summary import summary
from ..presentation.images import unit_png_data_uri
from ..runs import METRICS, load_run, read_record
from ..training.trained_model import TrainedModel
from . import engines
from .errors import NonFiniteOutput, PayloadTooLarge, RequestError
from .preprocess import PreparedImage, Preprocessing, from_pixels, from_upload, range_warnings

Payload = bytes | Any  # upload bytes, or the decoded JSON value of one image's pixels


@dataclass(frozen=True)
class ServerSettings:
    max_body_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_batch: int = 64  # images per /predict/batch request
    max_feature_channels: int = 32  # tiles per layer in /feature-maps unless the client asks for fewer
    max_batch_size: int = 32  # images per forward pass the batcher forms (BENCHMARKS.md, "Serving")
    max_batch_delay_ms: float = 2.0  # longest the batcher waits for requests still being read
    engine: str = "torch"  # one of engines.CHOICES
    batch_worker: str = (
        "auto"  # process, thread, or auto: a process for a run on disk with 2+ cores (worker_process.py)
    )


@dataclass(frozen=True)
class Job:
    """One image to predict: what a request hands the batcher."""

    payload: Any  # upload bytes, or the decoded JSON value of one image's pixels
    invert: bool | None
    top_k: int
    framing: Framing | None = None  # None: the run's learned framing
    language: str = "en"  # the request's: its errors and warnings are worded in the batch worker, maybe another process


@dataclass
class ServedModel:
    trained: TrainedModel
    prep: Preprocessing
    info: dict[str, Any]
    settings: ServerSettings
    engine: engines.Engine
    engines_measured: list[engines.Engine]  # what --engine auto timed; empty otherwise
    # One model call at a time: on a few cores torch already uses them all inside one call, and
    # concurrent calls would only fight over them. Decoding runs outside the lock, in parallel.
    lock: threading.Lock = field(default_factory=threading.Lock)


def load_served(run: str | Path | TrainedModel, settings: ServerSettings | None = None) -> ServedModel:
    settings = settings or ServerSettings()
    trained = run if isinstance(run, TrainedModel) else load_run(run)
    lo, hi = trained.scaler.minimum, trained.scaler.maximum
    prep = Preprocessing(
        cast(tuple[int, int, int], tuple(trained.input_shape)),
        (float(lo), float(hi)),
        run_contract(trained),
        settings.max_image_pixels,
    )
    engine, measured = load_engine(trained, settings)
    info = model_info(trained, prep, settings) | {"engine": engine.name}
    return ServedModel(trained, prep, info, settings, engine, measured)


def load_engine(trained: TrainedModel, settings: ServerSettings) -> tuple[engines.Engine, list[engines.Engine]]:
    """The engine settings name, or with 'auto' the fastest with parity and every one that was timed."""
    sizes = engines.batch_sizes_for(settings.max_batch_size)
    if settings.engine == "auto":
        return engines.choose(trained, sizes)
    return engines.load(trained, settings.engine, sizes), []


def model_info(trained: TrainedModel, prep: Preprocessing, settings: ServerSettings) -> dict[str, Any]:
    described = summary(trained.model, tuple(trained.input_shape))
    metrics = {}
    if trained.path is not None and (Path(trained.path) / METRICS).is_file():
        metrics = read_record(Path(trained.path) / METRICS)
    channels = trained.input_shape[2]
    return {
        "name": described.name,
        "run": str(trained.path) if trained.path is not None else None,
        "class_names": list(trained.class_names),
        "input_shape": list(trained.input_shape),
        "parameters": {
            "total": described.total_params,
            "trainable": described.trainable_params,
            "non_trainable": described.non_trainable_params,
        },
        "test_accuracy": metrics.get("test_accuracy"),
        "summary": described.to_dict(),
        "summary_text": str(described),
        "preprocessing": {
            "input_shape": list(prep.input_shape),
            "color": "grayscale" if channels == 1 else "rgb",
            "resize": f"Lanczos to {prep.input_shape[0]} x {prep.input_shape[1]} after framing",
            "pixel_range": list(prep.pixel_range),
            "background": prep.contract.background,
            "framing": prep.contract.framing,
            "contract": prep.contract.to_dict(),
        },
        "limits": {
            "max_body_bytes": settings.max_body_bytes,
            "max_image_pixels": settings.max_image_pixels,
            "max_batch": settings.max_batch,
        },
    }


def prepare(
    payload: Payload, served: ServedModel, invert: bool | None, framing: Framing | None = None
) -> PreparedImage:
    if isinstance(payload, (bytes, bytearray)):
        if not payload:
            raise RequestError(_("the uploaded image is empty (0 bytes)."))
        return from_upload(bytes(payload), served.prep, invert, framing)
    return from_pixels(payload, served.prep, invert, framing)


def prediction(
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    top_k: int,
    image: PreparedImage,
    warnings: tuple[str, ...] = (),
) -> dict[str, Any]:
    check_finite_output(probabilities)
    order = np.argsort(-probabilities, kind="stable")[: max(1, min(top_k, len(class_names)))]
    best = int(order[0])
    return {
        "label": class_names[best],
        "index": best,
        "probabilities": [float(p) for p in probabilities],
        "top": [{"label": class_names[int(i)], "index": int(i), "probability": float(probabilities[i])} for i in order],
        "inverted": image.inverted,
        "framing": image.framing,
        "warnings": list(warnings),
    }


def check_finite_output(values: np.ndarray, layer: str | None = None) -> None:
    """Refuse to answer with NaN or infinity (JSON has no such numbers), naming the model as the cause."""
    if np.isfinite(values).all():
        return
    if layer is None:
        message = _(
            "the model gave NaN or infinite probabilities for this image, so there is no prediction to send; "
            "the run's weights hold NaN or infinity or overflow (check it with `convscope evaluate`)."
        )
    else:
        message = _(
            "the layer {layer} computed NaN or infinite values for this image, so there are no feature maps to send; "
            "the run's weights hold NaN or infinity or overflow (check it with `convscope evaluate`)."
        ).format(layer=layer)
    raise NonFiniteOutput(message)


def run_jobs(jobs: list[Job], served: ServedModel) -> list[dict[str, Any] | Exception]:
    """One outcome per job: its prediction, or the UserError of its own image. One forward pass."""
    outcomes: list[dict[str, Any] | Exception] = []
    prepared: list[PreparedImage] = []
    for job in jobs:
        try:
            with speaking(job.language):
                prepared.append(prepare(job.payload, served, job.invert, job.framing))
            outcomes.append({})
        except UserError as exc:
            outcomes.append(exc)
    if prepared:
        with served.lock:
            probabilities = served.engine.forward(np.stack([p.image for p in prepared]).astype(np.float32))
        rows = iter(zip(probabilities, prepared))
        names = served.trained.class_names
        for i, job in enumerate(jobs):
            if not isinstance(outcomes[i], Exception):
                p, image = next(rows)
                with speaking(job.language):
                    warnings = range_warnings(job.payload, served.prep.pixel_range)
                    try:
                        outcomes[i] = prediction(p, names, job.top_k, image, warnings)
                    except NonFiniteOutput as exc:
                        outcomes[i] = exc
    return outcomes


def one_of_many(outcomes: list[Any]) -> list[dict[str, Any]]:
    """Every image or none, for /predict/batch: the first bad image fails the call, named by position."""
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, UserError):
            if len(outcomes) == 1:
                raise outcome
            message = _("image {number} of {count}: {error}").format(number=i + 1, count=len(outcomes), error=outcome)
            raise type(outcome)(message) from None
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


def check_batch_length(count: int, served: ServedModel) -> None:
    if count > served.settings.max_batch:
        raise PayloadTooLarge(
            _("the batch has {count} images; this server takes at most {max_batch} per request.").format(
                count=count, max_batch=served.settings.max_batch
            )
        )


def feature_map_tiles(
    payload: Payload,
    served: ServedModel,
    invert: bool | None,
    top_k: int,
    channels: int,
    framing: Framing | None = None,
) -> dict[str, Any]:
    """The prediction plus every Conv/Pool layer's activations as one small PNG per channel."""
    image = prepare(payload, served, invert, framing)
    trained = served.trained
    with served.lock:
        probabilities = trained.predict_proba(image.image[None].astype(np.float32))[0]
        maps = feature_maps(trained, image.image.astype(np.float32))
    for fm in maps:
        check_finite_output(fm.values, fm.layer)
    channels = max(1, min(channels, served.settings.max_feature_channels))
    lo, hi = served.prep.pixel_range
    seen = np.clip((image.image.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    return {
        "prediction": prediction(
            probabilities, trained.class_names, top_k, image, range_warnings(payload, served.prep.pixel_range)
        ),
        "input": unit_png_data_uri(seen),
        "layers": [
            {
                "name": fm.layer,
                "type": fm.type,
                "shape": list(fm.output_shape),
                "tiles": [unit_png_data_uri(_stretch(values)) for values in fm.values[:channels]],
                "ranges": [[float(values.min()), float(values.max())] for values in fm.values[:channels]],
            }
            for fm in maps
        ],
    }


def _stretch(values: np.ndarray) -> np.ndarray:
    """One channel to [0, 1] by its own min..max; a constant channel is black."""
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
