"""`train`: the whole classic workflow in one call, the function behind `convscope train`.

load -> describe -> stratified split -> build -> summary -> fit (validation split, early
stopping) -> evaluate on the test split -> save the run directory atomically.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
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
from .runs import check_out_writable, default_run_dir, load_run, load_test_set, read_json, save_run
from .training.callbacks import Callback, ReduceLROnPlateau, TensorBoard
from .training.checkpoint import CheckpointStore, state_dir_for
from .training.diagnostics import ClassScore, CurveNote, notes_for, steps_per_epoch
from .training.fit import fit
from .training.settings import TrainSettings
from .training.trained_model import TrainedModel

if TYPE_CHECKING:
    from .training.distributed import DistContext


@dataclass
class TrainResult:
    trained: TrainedModel
    evaluation: EvaluationResult | None  # None on distributed ranks other than 0, which write nothing
    path: Path | None

    def __repr__(self) -> str:
        accuracy = f"test accuracy {self.evaluation.accuracy:.4f}" if self.evaluation is not None else "no evaluation"
        return f"<TrainResult {self.path or 'not saved'}: {accuracy}; the model is .trained, the test .evaluation>"


# Spellings of earlier versions and of Keras, mapped to the flag names: (flag, negate)
_ALIASES = {"verbose": ("quiet", True), "report": ("no_report", True), "streaming": ("stream", False)}


def _curve_notes(trained: TrainedModel, result: EvaluationResult, train_set: Dataset) -> list[CurveNote]:
    counts = np.bincount(np.asarray(train_set.labels), minlength=len(result.class_names))
    classes = [ClassScore(row["class"], row["recall"], int(n)) for row, n in zip(result.per_class, counts)]
    steps = steps_per_epoch(trained.data.get("train_size"), 0.0, trained.config.get("batch_size"))  # after the cut
    return notes_for(trained.history, trained.model, trained.config, steps, len(trained.class_names), classes)


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
    `no_report=True`, `nproc=2`, `resume=True` ...; `TrainSettings` lists them all), or `settings`
    holds them all at once. Defaults are the course's workflow: 20 epochs at most, EarlyStopping
    on val_loss with patience 3 that restores the best weights, validation_split 0.2, a 0.2
    stratified test split. Those are the `keras` recipe; `recipe` names another (`fast` is the
    default for the fast preset), and every training setting left at None comes from the recipe.
    `log`: where the progress goes (stdout); `callbacks`: more Keras callbacks for `fit`;
    `distributed`: this process's rank (only rank 0 prints, evaluates and writes the run; the
    other ranks return with `evaluation` and `path` None).
    """
    for alias, (flag, negate) in _ALIASES.items():
        if alias in options:
            value = options.pop(alias)
            options[flag] = (not value) if negate else value
    if not isinstance(options.get("stream", False), bool):
        raise TypeError("train(stream=...) is the --stream flag (True/False); the output file is `log=`.")
    options.update({k: v for k, v in (("data", data), ("model", model)) if v is not None})
    s = TrainSettings.of(settings, options)
    if not s.resume:  # a resumed run's `out` is checked against its saved state instead (_check_state)
        check_out_writable(s.out)  # first: a bad `out` must not cost a training run
    if s.nproc > 1 and distributed is None:
        return train_in_processes(s, callbacks)
    fit_settings = s.fit_settings()
    is_main = distributed is None or distributed.is_main
    log = log or sys.stdout
    verbose = not s.quiet and is_main
    say = (lambda text="": print(text, file=log, flush=True)) if verbose else (lambda text="": None)

    spec = resolve_spec(s.model)
    out = Path(s.out) if s.out is not None else default_run_dir(spec.name)
    state = _check_state(s, out)

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

    network = build(spec, dataset.input_shape, dataset.num_classes, seed=s.seed)
    say(str(summary(network)) + "\n")

    stopper = s.early_stopping()
    extra: list[Callback] = []
    if s.reduce_lr_patience is not None:
        extra.append(ReduceLROnPlateau(monitor=s.monitor, factor=s.reduce_lr_factor, patience=s.reduce_lr_patience))
    if s.tensorboard is not None:
        extra.append(TensorBoard(s.tensorboard))
    ranks = (distributed.rank, distributed.world_size) if distributed is not None else (0, 1)
    checkpoint = CheckpointStore(state, *ranks)
    if is_main and not s.resume:
        _start_state(s, state, say)
    try:
        trained = fit(
            network,
            train_set,
            settings=fit_settings,
            early_stopping=stopper,
            callbacks=[*extra, *callbacks],
            device=s.device,
            verbose=verbose,
            log=log,
            distributed=distributed,
            checkpoint=checkpoint,
            resume=s.resume,
            threads=s.threads,
        )
    except BaseException:
        # A fresh run that saved no epoch leaves nothing behind; a --resume that failed keeps the state it
        # was given, whatever it holds, for the user to fix or delete.
        if is_main and not s.resume and checkpoint.latest() is None:
            shutil.rmtree(state, ignore_errors=True)
        raise
    if not is_main:
        return TrainResult(trained, None, None)
    history = trained.history
    if history.epochs_run == 0:
        shutil.rmtree(state, ignore_errors=True)
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

    result = evaluate(trained, test_set)
    say("\n" + result.text())
    for note in _curve_notes(trained, result, train_set):
        say("\n" + _("what this curve says: {note}").format(note=note))

    config: dict[str, Any] = {
        "data": {
            "source": str(s.data),
            "class_names": list(dataset.class_names),
            "layout": s.layout,
            "image_size": s.image_size,
            "channels": s.channels,
            "input_shape": list(dataset.input_shape),
            "test_split": None if dataset.predefined_test is not None else s.test_split,
            "predefined_split": dataset.predefined_test is not None,
            "split_seed": s.seed,
            "train_size": len(train_set),
            "test_size": len(test_set),
        },
        "model": {"name": spec.name, "source": s.model if isinstance(s.model, str) else spec.name},
        "recipe": s.recipe_settings().name,
        "settings": s.to_dict(),
        "versions": {"convscope": __version__, "torch": torch.__version__},
    }
    try:
        path = save_run(trained, out, result, config)
    except Exception:
        # A failed write leaves nothing behind, the in-progress state included (a Ctrl-C keeps it for --resume).
        shutil.rmtree(state, ignore_errors=True)
        raise
    shutil.rmtree(state, ignore_errors=True)  # the run is whole: its in-progress state is no longer needed
    say("\n" + _("run saved to {path}").format(path=path))
    if not s.no_report:  # after the run is safely on disk: a failing report never costs the trained model
        from .presentation.report import write_report  # matplotlib (~0.3 s to import) loads only when a report is drawn

        say(_("report: {path}").format(path=write_report(path, samples=train_set)))
    return TrainResult(trained, result, path)


def _check_state(s: TrainSettings, out: Path) -> Path:
    """The run's in-progress state folder, checked against these settings with --resume (before any data loads)."""
    state = state_dir_for(out)
    saved_file = state / "settings.json"
    if s.resume:
        if s.out is None:
            raise UserError(
                _("--resume continues the run that --out names; give the same --out as the interrupted run.")
            )
        if out.exists():
            raise UserError(
                _("--resume: the run {out} is already finished; there is nothing to resume.").format(out=out)
            )
        if not saved_file.is_file():
            raise UserError(
                _(
                    "--resume: there is no saved state for {out} (looked for {state}); run the same command without --resume to start it."
                ).format(out=out, state=state)
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
        return state
    if out.exists():
        raise UserError(_("run directory {out} already exists; choose another --out.").format(out=out))
    return state


def _start_state(s: TrainSettings, state: Path, say) -> None:
    """A fresh in-progress state folder holding the settings, which `--resume` compares against."""
    if state.exists():
        say(
            _("(discarding the saved state of an interrupted run in {state}; --resume would continue it)").format(
                state=state
            )
        )
        shutil.rmtree(state)
    state.mkdir(parents=True)
    partial = state / ".settings.json.tmp"  # a kill mid-write leaves no half a file for --resume to read
    partial.write_text(json.dumps(s.to_dict(), indent=2) + "\n")
    partial.replace(state / "settings.json")


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
