"""The forward pass behind the server's batches: torch eager, onnxruntime or OpenVINO.

Every engine maps raw (N, H, W, C) float32 pixels in the training data's units to (N, K) class
probabilities. `torch` is `TrainedModel.predict_proba` itself, the one prediction path the CLI and
`cs.load_run(...).predict_proba` use. The other two run the graph `convscope export` writes (the
scaling, the transpose and the softmax inside it) and are adopted only with parity: every engine is
checked against `predict_proba` when it is loaded, to 1e-4 for an fp32 run and to bf16's own
resolution for a bf16 run; a miss is refused with a message, never served.

`auto` loads every engine that is installed and passes the check, times each at the batch sizes
the batcher produces, and keeps the fastest (BENCHMARKS.md, "Serving engines", has the numbers
behind the default). onnxruntime and OpenVINO come with the `serve-engines` extra.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..i18n import _
from ..training.trained_model import TrainedModel

ENGINES = ("torch", "onnxruntime", "openvino")
CHOICES = (*ENGINES, "auto")
FP32_TOLERANCE = 1e-4  # max |difference| in a probability, fp32 run
BF16_TOLERANCE = 2.0**-7  # bf16 keeps 8 significant bits: its own resolution near 1
log = logging.getLogger("convscope.serving")

Forward = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Engine:
    name: str
    forward: Forward
    parity: float = 0.0  # max |difference| from predict_proba on the check images
    timings: dict[int, float] = field(default_factory=dict)  # batch size -> seconds per image (auto only)


def precision_of(trained: TrainedModel) -> str:
    return trained.config.get("precision", "fp32")


def tolerance(trained: TrainedModel) -> float:
    return BF16_TOLERANCE if precision_of(trained) == "bf16" else FP32_TOLERANCE


def check_images(trained: TrainedModel, count: int = 64, seed: int = 0) -> np.ndarray:
    """Images spread over the pixel range, some flat, some noisy: what the parity check runs on."""
    rng = np.random.default_rng(seed)
    lo, hi = trained.scaler.minimum, trained.scaler.maximum
    images = rng.uniform(lo, hi, (count, *trained.input_shape)).astype(np.float32)
    images[: count // 4] = np.round(images[: count // 4] / (hi - lo)) * (hi - lo) + lo  # two-level, like digits
    return images


# --- the engines --------------------------------------------------------------------------------


def torch_forward(trained: TrainedModel) -> Forward:
    return lambda images: trained.predict_proba(images, batch_size=max(1, len(images)))


def onnxruntime_forward(trained: TrainedModel, threads: int) -> Forward:
    onnxruntime = _optional("onnxruntime")
    from ..export.contract import INPUT_NAME, OUTPUT_NAME
    from ..export.writers import export

    with tempfile.TemporaryDirectory(prefix="convscope-ort-") as tmp:
        path = export(trained, Path(tmp) / "model.onnx", "onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda images: session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(images, dtype=np.float32)})[0]


def openvino_forward(trained: TrainedModel, threads: int) -> Forward:
    ov = _optional("openvino")
    from ..export.writers import RawPixelClassifier

    wrapper = RawPixelClassifier(trained.model, trained.scaler).to("cpu").eval()
    h, w, c = trained.input_shape
    example = torch.rand(2, h, w, c) * (trained.scaler.maximum - trained.scaler.minimum) + trained.scaler.minimum
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        converted = ov.convert_model(wrapper, example_input=example, input=[(-1, h, w, c)])
    trained.model.to(trained.device)
    # OpenVINO runs in bf16 on CPUs that have it unless told otherwise: the run's precision decides.
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision_of(trained) == "bf16" else "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
    }
    compiled = ov.Core().compile_model(converted, "CPU", config)
    request = compiled.create_infer_request()  # one request: the batcher runs one batch at a time

    def forward(images: np.ndarray) -> np.ndarray:
        return np.array(request.infer([np.ascontiguousarray(images, dtype=np.float32)])[0], dtype=np.float32)

    return forward


def _optional(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise UserError(
            _("engine {module} is not installed: pip install 'convscope[serve-engines]'.").format(module=module)
        ) from None


def build(trained: TrainedModel, name: str, threads: int | None = None) -> Forward:
    threads = threads or torch.get_num_threads()
    if name == "torch":
        return torch_forward(trained)
    if name == "onnxruntime":
        return onnxruntime_forward(trained, threads)
    if name == "openvino":
        return openvino_forward(trained, threads)
    raise UserError(
        _("unknown engine {name!r}; choose one of {choices}.").format(name=name, choices=", ".join(CHOICES))
    )


# --- parity and choice --------------------------------------------------------------------------


def parity(trained: TrainedModel, forward: Forward, batch_sizes: Sequence[int]) -> float:
    """Max |difference| from predict_proba, over the check images fed at each of `batch_sizes`."""
    images = check_images(trained, max(batch_sizes))
    want = trained.predict_proba(images)
    worst = 0.0
    for size in sorted(set(batch_sizes)):
        got = np.concatenate([forward(images[i : i + size]) for i in range(0, len(images), size)])
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def load(trained: TrainedModel, name: str, batch_sizes: Sequence[int], threads: int | None = None) -> Engine:
    """One engine by name, checked for parity; a miss is a UserError naming the numbers."""
    forward = build(trained, name, threads)
    if name == "torch":
        return Engine(name, forward)
    gap = parity(trained, forward, batch_sizes)
    if not gap <= tolerance(trained):
        raise UserError(
            _(
                "engine {name} differs from the run's own predictions by up to {gap:.2g} in a probability, over the {tolerance:.2g} allowed for a {precision_of} run; serve it with --engine torch."
            ).format(name=name, gap=gap, tolerance=tolerance(trained), precision_of=precision_of(trained))
        )
    return Engine(name, forward, gap)


def seconds_per_image(forward: Forward, images: np.ndarray, size: int, budget_s: float) -> float:
    """Median time of one forward pass of `size` images, per image, within a small time budget."""
    batch = images[:size]
    forward(batch)  # warm-up: first calls allocate and pick kernels
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 50):
        start = time.perf_counter()
        forward(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / size


def choose(
    trained: TrainedModel,
    batch_sizes: Sequence[int],
    candidates: Sequence[str] = ENGINES,
    threads: int | None = None,
    budget_s: float = 0.2,
) -> tuple[Engine, list[Engine]]:
    """The fastest installed engine with parity, by the summed time per image over `batch_sizes`."""
    images = check_images(trained, max(batch_sizes))
    measured = []
    for name in candidates:
        try:
            engine = load(trained, name, batch_sizes, threads)
        except UserError as exc:
            log.info("engine %s left out: %s", name, exc)
            continue
        timings = {size: seconds_per_image(engine.forward, images, size, budget_s) for size in batch_sizes}
        measured.append(Engine(engine.name, engine.forward, engine.parity, timings))
    best = min(measured, key=lambda e: sum(e.timings.values()))
    return best, measured


def batch_sizes_for(max_batch_size: int) -> list[int]:
    """The sizes the batcher produces: 1 when idle, up to the maximum under load."""
    sizes = {1, max_batch_size}
    size = 4
    while size < max_batch_size:
        sizes.add(size)
        size *= 4
    return sorted(sizes)
