"""`fit`: Keras' `model.fit` for a torch module, kept on one screen.

Adam with Keras defaults, categorical cross-entropy on integer labels (same numbers as
one-hot + softmax, without building one-hot vectors), the one epoch loop of `loop.py` (resident
or streamed data, one process or DDP), `validation_split` taken from the end of the training
arrays as Keras does, Keras callbacks (early stopping, the progress bar, checkpoints ...), the
state after every epoch for `--resume`, and Ctrl-C that ends the run cleanly with the best
weights so far.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import torch
from torch import nn

from ..data.dataset import Dataset
from ..data.framing import learn_contract
from ..data.scaling import MinMaxScaler
from ..errors import UserError
from ..i18n import _
from ..record import DataRecord, FitRecord, ResumeKey
from .adam import KerasAdam
from .allocator import keep_freed_memory
from .callbacks import Callback, CallbackList, ModelCheckpoint, ReduceLROnPlateau
from .checkpoint import CheckpointStore, TrainingState, identity_caveats
from .device import pick_device
from .diagnostics import steps_per_epoch, validation_cut
from .early_stopping import EarlyStopping, MonitorRule, best_epoch
from .estimate import Estimate, estimate_epoch
from .history import History
from .loop import EpochLoop, Extras, OneProcess, Reducer, Tensors, autocast_for, evaluate_tensors, feed_for
from .progress import default_progress
from .recipes import lr_scheduler
from .settings import PRECISIONS, FitSettings
from .threads import ThreadGovernor
from .trained_model import TrainedModel

if TYPE_CHECKING:
    from .distributed import DistContext

__all__ = ["PRECISIONS", "Mechanics", "Tensors", "evaluate_tensors", "fit", "resolve_precision"]


def fit(
    model: nn.Module,
    train: Dataset,
    *,
    validation_data: Dataset | None = None,
    early_stopping: EarlyStopping | None = None,
    callbacks: Sequence[Callback] = (),
    device: str | torch.device | None = None,
    verbose: bool = True,
    log: TextIO | None = None,
    distributed: DistContext | None = None,
    checkpoint: CheckpointStore | None = None,
    resume: bool = False,
    settings: FitSettings | None = None,
    threads: int | None = None,
    **options: Any,
) -> TrainedModel:
    """Train `model` on `train`; returns the model with its scaler, class names and history.

    Settings (`FitSettings`, Keras' defaults): epochs=10, batch_size=32, validation_split=0.0,
    lr=1e-3, seed=0, precision="fp32", and the recipe extras schedule="constant",
    label_smoothing=0.0, random_shift=0 (see `recipes.py`); pass them as keywords or as `settings`.
    `validation_split` holds out the last fraction of `train` (before shuffling), exactly like
    Keras; `validation_data` gives a separate set instead. `callbacks`: Keras callbacks
    (`callbacks.py`); `early_stopping` is one more, copied fresh (the README's spelling).
    `log`: where the progress goes (stdout). The rest is how the run is carried out (`Mechanics`):
    `device`; `distributed`, this process's rank (`distributed.py`); `checkpoint`, where the state
    after every epoch is saved, and with `resume` training continues from the last saved epoch;
    `threads`, torch's intra-op threads (None picks them from the free cores and adjusts them while
    training, `threads.py`).
    """
    settings = FitSettings.of(settings, options)
    run = Mechanics.of(device, settings.precision, distributed, checkpoint, resume, threads)
    train, validation_data = _split_validation(train, validation_data, settings.validation_split)
    callbacks = ([early_stopping.fresh()] if early_stopping is not None else []) + list(callbacks)
    _check_monitors(callbacks, validation_data is not None)
    scaler = MinMaxScaler.fit(train.images)  # training statistics only, reused unchanged everywhere after
    contract = learn_contract(train.images, (scaler.minimum, scaler.maximum))  # how new pictures get framed
    loop, state = run.prepare(model, train, validation_data, scaler, settings, callbacks)
    stopper = next((cb for cb in state.callbacks if isinstance(cb, EarlyStopping)), None)
    # The one rule for "best epoch": the early-stopping decision's, which every view of this run names
    rule = stopper.rule if stopper is not None else MonitorRule.default(validation_data is not None)
    shown = list(state.callbacks)
    if verbose and run.reducer.is_main:  # one line before the first epoch: how long an epoch will take here
        shown.append(default_progress(log, rule, run.estimate(loop, train.input_shape).line()))
        if emulated_bf16(run.precision, run.device):
            print(
                _("note: bf16 is emulated on this CPU (no AVX-512 BF16 or AMX), several times slower than fp32."),
                file=log,
            )
    hooks = CallbackList(shown, model, {"epochs": settings.epochs, "steps": loop.steps, "verbose": int(verbose)})
    history = History()
    setattr(model, "optimizer", state.optimizer)  # Keras' names, for callbacks  # noqa: B010
    setattr(model, "stop_training", False)  # noqa: B010
    governor = run.start_threads(model, state)
    with torch.random.fork_rng(devices=[run.device] if run.device.type == "cuda" else []):
        # dropout draws from the global generator; fork_rng keeps ours private
        torch.manual_seed(settings.seed + run.reducer.rank)
        hooks.on_train_begin()
        first, stopped = run.resume_into(state, history, log if verbose and run.reducer.is_main else None)
        _train_epochs(loop, hooks, state, history, run, range(first, settings.epochs), stopped)
        history.best_epoch = stopper.best_epoch if stopper is not None else best_epoch(history.rows, rule)
        restores = stopper is not None and stopper.will_restore
        history.weights_epoch = history.best_epoch if restores else history.epochs_run
        if history.interrupted and verbose and run.reducer.is_main:
            print("\n" + interruption_line(history, restores), file=log)
        hooks.on_train_end({**history.ending(), "monitor": rule.monitor})
    del model.optimizer  # the module outlives fit; its optimizer need not
    config = run.record(settings, stopper, governor.stop()).to_dict()
    data = DataRecord.of_fit(train, validation_data)
    return TrainedModel(
        model.eval(),
        scaler,
        train.class_names,
        train.input_shape,
        history,
        config,
        run.device,
        data=data,
        input_contract=contract,
    )


@dataclass
class Mechanics:
    """How `fit` carries a run out, not what it computes: the device and its precision, the processes that
    share each step (`reducer`), torch's threads, and the state saved after every epoch for `--resume`."""

    device: torch.device
    precision: str  # resolved: "fp32" or "bf16"
    reducer: Reducer
    distributed: DistContext | None = None
    checkpoint: CheckpointStore | None = None
    resume: bool = False
    threads: int | None = None  # requested; None: chosen from the free cores and adjusted while training

    @classmethod
    def of(
        cls,
        device: str | torch.device | None,
        precision: str,
        distributed: DistContext | None = None,
        checkpoint: CheckpointStore | None = None,
        resume: bool = False,
        threads: int | None = None,
    ) -> Mechanics:
        device = pick_device(device) if not isinstance(device, torch.device) else device
        device = distributed.device(device) if distributed is not None else device
        reducer: Reducer = OneProcess()
        if distributed is not None:
            from .distributed import DataParallel

            reducer = DataParallel(distributed, device)
        return cls(device, resolve_precision(precision, device), reducer, distributed, checkpoint, resume, threads)

    def prepare(
        self,
        model: nn.Module,
        train: Dataset,
        validation: Dataset | None,
        scaler: MinMaxScaler,
        settings: FitSettings,
        callbacks: list[Callback],
    ) -> tuple[EpochLoop, TrainingState]:
        """The model on the device, Keras' Adam, the shuffler and the schedule, in the epoch loop."""
        device = self.device
        if device.type == "cpu":
            keep_freed_memory()  # else every step page-faults its activations back in (allocator.py)
        model = model.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # one fused kernel per step instead of ~10 small ops per parameter (1.04x a cnn step)
        optimizer = KerasAdam(model.parameters(), lr=settings.lr, fused=_fusable(model))
        shuffler = torch.Generator().manual_seed(settings.seed)
        steps = steps_per_epoch(len(train), 0.0, settings.batch_size) or 0
        scheduler = lr_scheduler(optimizer, settings.schedule, settings.epochs * steps)
        loop = EpochLoop(
            model,
            optimizer,
            feed_for(train, scaler, device),
            feed_for(validation, scaler, device) if validation is not None else None,
            settings.batch_size,
            shuffler,
            autocast_for(device, self.precision),
            Extras(scheduler, settings.label_smoothing, settings.random_shift),
            self.reducer,
        )
        if not self.reducer.is_main:  # files and output are rank 0's; decisions are every rank's, on the same logs
            callbacks = [cb for cb in callbacks if not cb.main_process_only]
        key = ResumeKey(
            settings.to_dict(),
            self.precision,
            self.reducer.world_size,
            len(train),
            len(validation) if validation is not None else 0,
        )
        return loop, TrainingState(model, optimizer, scheduler, shuffler, callbacks, key.to_dict())

    def estimate(self, loop: EpochLoop, input_shape: tuple[int, ...]) -> Estimate:
        """How long an epoch will take here, from a short measured step (estimate.py)."""
        validation = len(loop.validation) if loop.validation is not None else 0
        return estimate_epoch(
            loop.model, input_shape, len(loop.train), validation, loop.batch_size, self.device, loop.autocast
        )

    def start_threads(self, model: nn.Module, state: TrainingState) -> ThreadGovernor:
        """torch's threads for this fit; DDP ranks keep their launcher's count. The state records a fixed count."""
        governor = ThreadGovernor.start(model, self.threads, fixed=self.distributed is not None)
        state.threads = None if governor.plan.adaptive else governor.threads
        return governor

    def resume_into(self, state: TrainingState, history: History, log: TextIO | None) -> tuple[int, bool]:
        """With `resume`: the saved state restored into `state` and `history`, said on `log` when given;
        returns the first epoch to train and whether training had already stopped."""
        if not self.resume or self.checkpoint is None:
            return 0, False
        first, stopped, because = 0, False, []
        if self.checkpoint.latest() is not None:
            restored = self.checkpoint.restore(state)
            first, stopped, history.rows = restored.epoch, restored.stopped, restored.rows
            because = identity_caveats(restored.threads, state.threads, restored.device, self.device.type)
            generators = restored.generators
        else:  # killed before its first epoch was saved: starting afresh is continuing, and sets nothing
            generators = []
        history.resumed_from_epoch = first
        history.resume = {"epoch": first, "generators": generators, "identical": not because, "because": because}
        if log is not None:
            print(_("resumed after epoch {epoch}").format(epoch=first), file=log)
            for cause in because:
                print(_("not bit-identical to a run never interrupted: {cause}").format(cause=cause), file=log)
        return first, stopped

    def record(self, settings: FitSettings, stopper: EarlyStopping | None, threads: dict) -> FitRecord:
        """How this fit trained, as the run records it (config.json's "fit")."""
        return FitRecord(
            settings.to_dict(),
            self.precision,
            str(self.device),
            stopper.settings() if stopper else None,
            threads,
            self.distributed.world_size if self.distributed is not None else None,
        )


def _split_validation(
    train: Dataset, validation: Dataset | None, validation_split: float
) -> tuple[Dataset, Dataset | None]:
    """Keras' `validation_split`: the last fraction of `train`, before shuffling (unless `validation` is given)."""
    if validation is not None or validation_split <= 0:
        return train, validation
    cut = validation_cut(len(train), validation_split)
    if cut < 1 or cut >= len(train):
        raise UserError(
            _("validation_split={validation_split} leaves no training or no validation images out of {count}.").format(
                validation_split=validation_split, count=len(train)
            )
        )
    return train.subset(np.arange(cut)), train.subset(np.arange(cut, len(train)))


def _train_epochs(
    loop: EpochLoop,
    hooks: CallbackList,
    state: TrainingState,
    history: History,
    run: Mechanics,
    epochs: range,
    stopped: bool,
) -> None:
    """`epochs` (none when the resumed run had `stopped`), each saved to the checkpoint store; Ctrl-C ends
    them cleanly (`history.interrupted`)."""
    try:
        for epoch in epochs if not stopped else ():
            hooks.on_epoch_begin(epoch)
            started = time.perf_counter()
            metrics = loop.train_epoch(hooks)
            if loop.validation is not None:
                val_loss, val_acc = loop.validate()
                metrics.update(val_loss=val_loss, val_accuracy=val_acc)
            row = {"epoch": epoch + 1, **metrics, "seconds": time.perf_counter() - started}
            history.rows.append(row)
            hooks.on_epoch_end(epoch, {k: v for k, v in row.items() if k not in ("epoch", "seconds")})
            stopped = run.reducer.agree(bool(state.model.stop_training))
            if run.checkpoint is not None:
                run.checkpoint.save(epoch + 1, state, history.rows, stopped)
            if stopped:
                break
        if run.checkpoint is not None:
            # Every rank has written its last state before rank 0 goes on to save the run and clear
            # that state; a slower rank's last write would otherwise land after the clearing.
            run.reducer.barrier()
    except KeyboardInterrupt:
        history.interrupted = True
    history.stopped_early = stopped


def interruption_line(history: History, restores: bool) -> str:
    """What a Ctrl-C during `fit` did, in one sentence: which weights the model keeps, if any."""
    if not history.rows:
        return _("Interrupted before the first epoch ended: there are no trained weights to keep.")
    epoch = len(history.rows) + 1
    if restores and history.weights_epoch is not None:
        return _(
            "Interrupted in epoch {epoch}: training stops with the weights of epoch {kept}, the best so far."
        ).format(epoch=epoch, kept=history.weights_epoch)
    return _(
        "Interrupted in epoch {epoch}: training stops with the weights of epoch {kept}, the last one completed."
    ).format(epoch=epoch, kept=len(history.rows))


def _check_monitors(callbacks: list[Callback], has_validation: bool) -> None:
    for cb in callbacks:
        monitor = str(getattr(cb, "monitor", ""))
        if (
            isinstance(cb, (EarlyStopping, ReduceLROnPlateau, ModelCheckpoint))
            and monitor.startswith("val_")
            and not has_validation
        ):
            name = _("early stopping") if isinstance(cb, EarlyStopping) else type(cb).__name__
            raise UserError(
                _("{name} monitors {monitor}, but there is no validation data; set validation_split.").format(
                    name=name, monitor=monitor
                )
            )


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is bf16 where the hardware computes it natively (CUDA GPUs with bf16, CPUs with
    AVX-512 BF16 or AMX), else fp32: emulated bf16 on older CPUs is slower than fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    native = device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return "bf16" if native else "fp32"


def emulated_bf16(precision: str, device: torch.device) -> bool:
    """bf16 asked for on a CPU that lacks it (AVX2): torch converts every operand, and a `cnn` fit ran 11x slower
    than in fp32 (BENCHMARKS.md)."""
    return precision == "bf16" and device.type == "cpu" and resolve_precision("auto", device) == "fp32"


def _fusable(model: nn.Module) -> bool | None:
    """torch's fused Adam takes floating-point parameters on the CPU or CUDA, all on one device."""
    params = list(model.parameters())
    same = len({(p.device, p.dtype) for p in params}) == 1
    return (
        True if params and same and params[0].is_floating_point() and params[0].device.type in ("cpu", "cuda") else None
    )
