"""`train`: the whole classic workflow in one call, the function behind `convscope train`.

load -> describe -> stratified split -> build -> summary -> fit (validation split, early
stopping) -> evaluate on the test split -> save the run directory atomically.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch

from ._version import __version__
from .checks import check_random_shift
from .data import describe, load
from .data.catalog import named as named_dataset
from .data.dataset import Dataset
from .data.streaming import stream as open_stream
from .errors import Interrupted, UserError
from .evaluation.evaluate import EvaluationResult, evaluate
from .i18n import _
from .models.build import build, resolve_spec
from .models.summary import summary
from .record import DataRecord, RunConfig, Split
from .runs import check_out_writable, default_run_dir, load_run, load_test_set, read_json, save_run
from .training.callbacks import Callback, ReduceLROnPlateau, TensorBoard
from .training.checkpoint import CheckpointStore
from .training.diagnostics import curve_notes_for
from .training.fit import fit
from .training.settings import TrainSettings
from .training.trained_model import TrainedModel

if TYPE_CHECKING:
    from .training.distributed import DistContext
    from .training.early_stopping import EarlyStopping


@dataclass
class TrainResult:
    trained: TrainedModel
    evaluation: EvaluationResult | None  # None on distributed ranks other than 0, which write nothing
    path: Path | None

    def __repr__(self) -> str:
        accuracy = f"test accuracy {self.evaluation.accuracy:.4f}" if self.evaluation is not None else "no evaluation"
        return f"<TrainResult {self.path or 'not saved'}: {accuracy}; the model is .trained, the test .evaluation>"


def train(
    data: str | None = None,
    model: str | dict | None = None,
    *,
    settings: TrainSettings | None = None,
    log: TextIO | None = None,
    callbacks: Sequence[Callback] = (),
    distributed: DistContext | None = None,
    **options: Any,
) -> TrainResult:
    """Train `model` on `data` the way the course does and write a run directory.

    `options` are the flags of `convscope train`, by the same names (`epochs=5`, `stream=True`,
    `report=False`, `nproc=2`, `resume=True` ...; `TrainSettings` lists them all), or `settings`
    holds them all at once. Defaults are the course's workflow: 20 epochs at most, EarlyStopping
    on val_loss with patience 3 that restores the best weights, validation_split 0.2, a 0.2
    stratified test split. Those are the `keras` recipe; `recipe` names another (`fast` is the
    default for the fast preset), and every training setting left at None comes from the recipe.
    `log`: where the progress goes (stdout); `callbacks`: more Keras callbacks for `fit`;
    `distributed`: this process's rank (only rank 0 prints, evaluates and writes the run; the
    other ranks return with `evaluation` and `path` None).
    """
    s = _settings(data, model, settings, options)
    if not s.resume:  # a resumed run's `out` is checked against its saved state instead (_open_store)
        check_out_writable(s.out)  # first: a bad `out` must not cost a training run
    if s.nproc > 1 and distributed is None:
        return train_in_processes(s, callbacks)
    is_main = distributed is None or distributed.is_main
    log = log or sys.stdout
    verbose = s.verbose and is_main
    say = (lambda text="": print(text, file=log, flush=True)) if verbose else (lambda text="": None)
    spec = resolve_spec(s.model)
    out = Path(s.out) if s.out is not None else default_run_dir(spec.name)
    store = _open_store(s, out, distributed)
    dataset, train_set, test_set = _load_data(s, distributed, say)
    network = build(spec, dataset.input_shape, dataset.num_classes, seed=s.seed)
    say(str(summary(network)) + "\n")
    stopper, extra = _callbacks(s, callbacks)
    if is_main and not s.resume:
        store.start(s.to_dict(), say)
    trained = _fit(s, network, train_set, store, stopper, extra, distributed, log, verbose)
    if not is_main:
        return TrainResult(trained, None, None)
    _check_trained(s, trained, store, say)
    result = evaluate(trained, test_set)
    say("\n" + result.text())
    for note in curve_notes_for(trained, result.per_class, train_set.labels):
        say("\n" + _("what this curve says: {note}").format(note=note))
    path = _save(trained, out, result, _run_config(s, spec.name, dataset, len(train_set), len(test_set)), store)
    say("\n" + _("run saved to {path}").format(path=path))
    if s.report:  # after the run is safely on disk: a failing report never costs the trained model
        from .presentation.report import write_report  # matplotlib (~0.3 s to import) loads only when a report is drawn

        say(_("report: {path}").format(path=write_report(path, samples=train_set)))
    return TrainResult(trained, result, path)


def _settings(data, model, settings: TrainSettings | None, options: dict[str, Any]) -> TrainSettings:
    """`train`'s arguments as one `TrainSettings`."""
    if not isinstance(options.get("stream", False), bool):
        raise TypeError("train(stream=...) is the --stream flag (True/False); the output file is `log=`.")
    options.update({k: v for k, v in (("data", data), ("model", model)) if v is not None})
    return TrainSettings.of(settings, options)


def _load_data(s: TrainSettings, distributed: DistContext | None, say) -> tuple[Dataset, Dataset, Dataset]:
    """The data (read or streamed), described, and its train and test splits."""
    dataset: Dataset
    if s.stream:
        if s.layout is not None:
            raise UserError(
                _("{data}: layout does not apply to streamed data, which is read as (N, H, W[, C]).").format(
                    data=s.data
                )
            )
        dataset = open_stream(s.data, class_names=s.class_names, image_size=s.image_size, channels=s.channels)
    else:
        dataset = load(s.data, class_names=s.class_names, layout=s.layout, image_size=s.image_size, channels=s.channels)
    fit_settings = s.fit_settings()
    check_random_shift(fit_settings.random_shift, dataset.input_shape)
    if distributed is not None and distributed.active:  # before anything is trained: the same data on every rank
        from .data.dataset import fingerprint
        from .training.distributed import check_same_data

        check_same_data(fingerprint(dataset), distributed, distributed.device(s.device))
    say(describe(dataset))
    entry = named_dataset(str(s.data))
    if entry is not None:
        say(entry.credit())
    train_set, test_set = dataset.split(test_size=s.test_split, seed=s.seed)
    say(
        _("split: {train} train (of which {validation:.0%} validation), {test} test").format(
            train=len(train_set), validation=fit_settings.validation_split, test=len(test_set)
        )
        + "\n"
    )
    return dataset, train_set, test_set


def _callbacks(s: TrainSettings, callbacks: Sequence[Callback]) -> tuple[EarlyStopping | None, list[Callback]]:
    """The settings' early stopping, and their other callbacks before the caller's."""
    extra: list[Callback] = []
    if s.reduce_lr_patience is not None:
        extra.append(ReduceLROnPlateau(monitor=s.monitor, factor=s.reduce_lr_factor, patience=s.reduce_lr_patience))
    if s.tensorboard is not None:
        extra.append(TensorBoard(s.tensorboard))
    return s.early_stopping(), [*extra, *callbacks]


def _fit(
    s: TrainSettings,
    network,
    train_set: Dataset,
    store: CheckpointStore,
    stopper: EarlyStopping | None,
    callbacks: list[Callback],
    distributed: DistContext | None,
    log: TextIO,
    verbose: bool,
) -> TrainedModel:
    """`fit` as the settings say; a fresh run that saved no epoch leaves no state behind."""
    try:
        return fit(
            network,
            train_set,
            settings=s.fit_settings(),
            early_stopping=stopper,
            callbacks=callbacks,
            device=s.device,
            verbose=verbose,
            log=log,
            distributed=distributed,
            checkpoint=store,
            resume=s.resume,
            threads=s.threads,
        )
    except BaseException:
        # a --resume that failed keeps the state it was given, whatever it holds, for the user to fix or delete
        if store.rank == 0 and not s.resume:
            store.clear_unsaved()
        raise


def _check_trained(s: TrainSettings, trained: TrainedModel, store: CheckpointStore, say) -> None:
    """Refuse a run without a completed epoch (there is nothing to save); say which epoch's weights it keeps."""
    history = trained.history
    if history.epochs_run == 0:
        store.clear()
        if history.interrupted:
            raise Interrupted(
                _("interrupted before the first epoch completed: nothing to save, so no run was written.")
            )
        raise UserError(_("no epoch completed: there is nothing to save, so no run was written."))
    if history.stopped_early or history.weights_epoch != history.epochs_run:
        say(
            _("restored the weights of epoch {epoch} (best {monitor})").format(
                epoch=history.weights_epoch, monitor=s.monitor
            )
        )


def _run_config(s: TrainSettings, model_name: str, dataset: Dataset, train_size: int, test_size: int) -> dict:
    """config.json's data, model, recipe, settings and versions (`save_run` adds the fit)."""
    predefined = dataset.predefined_test is not None
    data = DataRecord(
        str(s.data),
        list(dataset.class_names),
        list(dataset.input_shape),
        train_size,
        test_size=test_size,
        split=Split(predefined, None if predefined else s.test_split, s.seed),
        reading={"layout": s.layout, "image_size": s.image_size, "channels": s.channels},
    )
    source = s.model if isinstance(s.model, str) else model_name
    versions = {"convscope": __version__, "torch": torch.__version__}
    return RunConfig(data, model_name, source, s.recipe_settings().name, s.to_dict(), versions).to_dict()


def _save(trained: TrainedModel, out: Path, result: EvaluationResult, config: dict, store: CheckpointStore) -> Path:
    """The run directory, written atomically; then its in-progress state is no longer needed."""
    try:
        path = save_run(trained, out, result, config)
    except Exception:
        # A failed write leaves nothing behind, the in-progress state included (a Ctrl-C keeps it for --resume).
        store.clear()
        raise
    store.clear()
    return path


def _open_store(s: TrainSettings, out: Path, distributed: DistContext | None) -> CheckpointStore:
    """The run's checkpoint store; with --resume, its saved settings checked against these (before any data loads)."""
    store = CheckpointStore.beside(out, *((distributed.rank, distributed.world_size) if distributed else (0, 1)))
    if not s.resume:
        if out.exists():
            raise UserError(_("run directory {out} already exists; choose another --out.").format(out=out))
        return store
    if s.out is None:
        raise UserError(_("--resume continues the run that --out names; give the same --out as the interrupted run."))
    if out.exists():
        raise UserError(_("--resume: the run {out} is already finished; there is nothing to resume.").format(out=out))
    saved_file = store.settings_file
    if not saved_file.is_file():
        raise UserError(
            _(
                "--resume: there is no saved state for {out} (looked for {state}); run the same command without --resume to start it."
            ).format(out=out, state=store.directory)
        )
    try:
        saved = TrainSettings.from_config({"settings": read_json(saved_file)}, str(saved_file))
    except UserError as exc:
        message = str(exc)  # the settings' own checks name the field; the file is named here once
        raise UserError(message if str(saved_file) in message else f"{saved_file}: {message}") from None
    differences = s.differences(saved)
    if differences:
        raise UserError(
            _("--resume: {out} was started with other settings: {choices}.").format(
                out=out, choices="; ".join(differences)
            )
        )
    return store


def train_in_processes(settings: TrainSettings, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """`train(settings)` on `settings.nproc` local ranks; returns the run rank 0 wrote, read back."""
    # Decided here, once: each rank would otherwise stamp its own default directory name.
    out = Path(settings.out or default_run_dir(resolve_spec(settings.model).name))
    if out.exists() and not settings.resume:
        raise UserError(_("run directory {out} already exists; choose another --out.").format(out=out))
    from .training.distributed import launch  # torch.distributed loads only for parallel runs

    settings = replace(settings, out=str(out))
    launch(settings.nproc, _train_rank, (settings, list(callbacks)), device=settings.device)
    trained = load_run(out)
    test = load_test_set(out)[0]
    return TrainResult(trained, evaluate(trained, test), out)


def _train_rank(settings: TrainSettings, callbacks: list, ctx: DistContext) -> None:
    train(settings=settings, callbacks=callbacks, distributed=ctx)
