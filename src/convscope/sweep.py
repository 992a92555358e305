"""`sweep`: find filters, kernel sizes, dropout, learning rate and batch size by experiment, with Optuna.

    sweeps/<name>/
      study.db              Optuna's SQLite storage (or any database URL: many machines, one study)
      trials/trial-0000/    one ordinary run directory per trial: compare, inspect, report, serve it
      best_spec.yaml        the best trial's model spec, ready for `convscope train --model`
      best.json             its number, value, parameters, and the `convscope train` command that retrains it

Each trial takes the base spec (a preset or a spec file), draws every Conv2D layer's filters and
kernel size and every Dropout layer's rate, plus the learning rate and batch size, and trains it
with `workflow.train` exactly as `convscope train` would.  After every epoch the trial reports its
validation loss; Optuna's median pruner ends trials doing worse than the median of earlier trials
at the same epoch (the pruned trial still leaves its run directory).  The value minimised is the
best validation loss of the run, the epoch whose weights early stopping keeps.

Resuming: a sweep killed at any moment and started again with the same command (the same `--out` or
`--storage`/`--study-name`) continues its study. Trials a dead process left RUNNING are marked failed
(at once when the process ran on this machine and is gone; after Optuna's heartbeat grace period for
other machines), finished trials stay as they are, and each trial's draws are seeded from the seed *and* the
trial's number, so a resumed study goes on drawing new values instead of replaying its first draws.

Several workers, one study: processes on one or many machines started with the same `--storage` URL
(PostgreSQL, say) and `--study-name` share the study. Each trial's draws are seeded by the seed and the
trial's number, which the storage hands out once per study, so workers never draw the same values, and a
worker's pruner compares against every worker's reported epochs. Trial directories are named by that
number too (`trials/trial-0007`), so workers writing into one shared `--out` never collide.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from .errors import UserError
from .export.files import write_file_atomically
from .i18n import _, ngettext
from .models.build import resolve_spec
from .runs import WEIGHTS, default_run_dir
from .settings_table import SETTINGS, check_settings
from .training.callbacks import Callback
from .workflow import train

TRIALS_DIR = "trials"
BEST_SPEC, BEST_JSON, STORAGE_FILE = "best_spec.yaml", "best.json", "study.db"
# Optuna's heartbeat: a running trial writes one every HEARTBEAT seconds; one silent for GRACE is failed
# by the next process that starts a trial (the way trials of a dead machine leave RUNNING).
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 120


@dataclass(frozen=True)
class SearchSpace:
    """Ranges to draw from; None keeps the base spec's value (or the given lr / batch size)."""

    filters: tuple[int, int] | None = (8, 64)  # per Conv2D layer, integers on a log scale
    kernel_sizes: tuple[int, ...] | None = (3, 5)  # per Conv2D layer, one of these
    dropout: tuple[float, float] | None = (0.0, 0.5)  # per Dropout layer
    lr: tuple[float, float] | None = (1e-4, 1e-2)  # log scale
    batch_sizes: tuple[int, ...] | None = (32, 64, 128)

    def __post_init__(self) -> None:
        if self.filters and not 1 <= self.filters[0] <= self.filters[1]:
            raise UserError(_("filters range must be 1 <= low <= high, got {filters}.").format(filters=self.filters))
        if self.dropout and not 0.0 <= self.dropout[0] <= self.dropout[1] < 1.0:
            raise UserError(_("dropout range must be within [0, 1), got {dropout}.").format(dropout=self.dropout))
        if self.lr and not 0.0 < self.lr[0] <= self.lr[1]:
            raise UserError(_("learning-rate range must be positive, low <= high, got {lr}.").format(lr=self.lr))
        for name, values in ((_("kernel sizes"), self.kernel_sizes), (_("batch sizes"), self.batch_sizes)):
            if values is not None and (not values or min(values) < 1):
                raise UserError(_("{name} must be positive integers, got {values}.").format(name=name, values=values))


@dataclass(frozen=True)
class Draw:
    """What one trial trains: a full spec and the two fit settings that are searched."""

    spec: dict[str, Any]
    lr: float
    batch_size: int


def draw(trial, base: dict[str, Any], space: SearchSpace, lr: float, batch_size: int) -> Draw:
    """Suggest every searched value through `trial`; parameter names say which layer they belong to."""
    spec = json.loads(json.dumps(base))  # a deep copy of plain values
    spec["name"] = f"{base['name']}-trial-{trial.number}"
    for layer in spec["layers"]:
        name = layer["name"]
        if layer["type"] == "Conv2D":
            if space.filters:
                layer["filters"] = trial.suggest_int(f"{name}.filters", *space.filters, log=True)
            if space.kernel_sizes:
                layer["kernel_size"] = trial.suggest_categorical(f"{name}.kernel_size", list(space.kernel_sizes))
        elif layer["type"] == "Dropout" and space.dropout:
            layer["rate"] = trial.suggest_float(f"{name}.rate", *space.dropout)
    if space.lr:
        lr = trial.suggest_float("lr", *space.lr, log=True)
    if space.batch_sizes:
        batch_size = trial.suggest_categorical("batch_size", list(space.batch_sizes))
    return Draw(spec, lr, batch_size)


_CHECKED = ("epochs", "batch_size", "lr", "patience", "validation_split", "test_split", "seed")


@dataclass
class SweepSettings:
    """Everything a trial needs besides what it draws; stored in best.json to retrain the best."""

    data: str = "mnist-5k"
    model: str = "cnn"
    epochs: int = 10
    batch_size: int = 32  # used when batch size is not searched
    lr: float = 1e-3  # used when the learning rate is not searched
    patience: int = 3
    validation_split: float = 0.2
    test_split: float = 0.2
    seed: int = 0
    device: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)  # class_names, layout, image_size, channels

    def __post_init__(self) -> None:
        # The settings table's answer, before a study is opened: what `convscope train` refuses, no trial takes.
        check_settings({name: getattr(self, name) for name in _CHECKED}, optional=False)
        check_settings({"device": self.device, **{k: v for k, v in self.data_options.items() if k in SETTINGS}})

    def train_kwargs(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "epochs": self.epochs,
            "patience": self.patience,
            "validation_split": self.validation_split,
            "test_split": self.test_split,
            "seed": self.seed,
            "device": self.device,
            **self.data_options,
        }


@dataclass
class SweepResult:
    study: Any  # optuna.Study
    path: Path
    best_run: Path | None
    best_spec: Path | None

    def table(self) -> str:
        return study_table(self.study)


def sweep(
    settings: SweepSettings,
    *,
    trials: int = 20,
    space: SearchSpace = SearchSpace(),
    out: str | Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    prune: bool = True,
    timeout: float | None = None,
    log: TextIO | None = None,
    verbose: bool = False,
) -> SweepResult:
    """Run `trials` more trials of the study (created, or joined when it exists) and write the best spec.

    Each trial ends with one line on `log` (`trial_line`; None: silent); Optuna's own log lines are
    silenced unless `verbose`."""
    if settings.validation_split <= 0:
        raise UserError(_("a sweep compares trials by validation loss; set validation_split above 0."))
    if storage is not None and study_name is None and out is None:
        raise UserError(
            _(
                "--storage is shared by several workers: give each the same --study-name "
                "(without it, each would start its own study, named after its own new folder)."
            )
        )
    optuna = _optuna()
    base = resolve_spec(settings.model).to_dict()
    path = Path(out) if out is not None else default_run_dir(f"{base['name']}-sweep", root="sweeps")
    path.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(path / STORAGE_FILE).resolve()}"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1) if prune else optuna.pruners.NopPruner()
    with optuna_logging(optuna, verbose):
        return _sweep(optuna, settings, trials, space, path, storage, study_name, pruner, timeout, log, base)


def _sweep(optuna, settings, trials, space, path, storage, study_name, pruner, timeout, log, base) -> SweepResult:
    study = open_study(storage, study_name or path.name, pruner)
    fail_orphaned_trials(study)
    study.sampler = TrialSeededSampler(settings.seed)
    study.set_user_attr("settings", asdict(settings))

    def objective(trial) -> float:
        chosen = draw(trial, base, space, settings.lr, settings.batch_size)
        run_dir = path.resolve() / TRIALS_DIR / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        trial.set_user_attr("spec", chosen.spec)
        pruner = PruningCallback(trial)
        try:
            result = train(
                model=chosen.spec,
                lr=chosen.lr,
                batch_size=chosen.batch_size,
                out=run_dir,
                callbacks=[pruner],
                verbose=False,
                **settings.train_kwargs(),
            )
        except UserError as exc:
            trial.set_user_attr("error", str(exc))  # for the trial's line: Optuna's own says it only in its log
            raise
        if pruner.pruned_at is not None:  # the run directory is written; the study records the trial as pruned
            raise optuna.TrialPruned(f"pruned after epoch {pruner.pruned_at}")
        return min(result.trained.history.column("val_loss"))

    def progress(study, trial) -> None:
        if log is not None:
            print(trial_line(trial, study), file=log, flush=True)

    try:
        study.optimize(objective, n_trials=trials, timeout=timeout, catch=(UserError,), callbacks=[progress])
    except ValueError as exc:
        if "dynamic value space" not in str(exc):
            raise
        # Optuna refuses to widen a categorical choice a study already draws from (in its own words).
        raise UserError(
            _(
                "the study {name} draws from other choices than this command's ({reason}); "
                "give every worker of a study the same --kernel-sizes and --batch-sizes."
            ).format(name=study.study_name, reason=exc)
        ) from None
    best_run, best_spec = write_best(study, path, settings)
    return SweepResult(study, path, best_run, best_spec)


@contextmanager
def optuna_logging(optuna, verbose: bool) -> Iterator[None]:
    """Optuna's log lines ("[I 2026-...] Trial 0 finished with value ...") only when asked for: the sweep
    prints its own line per trial. Optuna's verbosity is process-wide, so it is put back afterwards."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def trial_line(trial, study) -> str:
    """One line per finished trial: its objective, whether it leads, what it drew and how long it took."""
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    seconds = trial.duration.total_seconds() if trial.duration is not None else 0.0
    state = trial.state.name
    if state == "COMPLETE":
        lead = _("  best so far") if _best_number(study) == trial.number else ""
        return _("trial {number}: val_loss {value:.4f}{lead}  ({params}; {seconds:.1f} s)").format(
            number=trial.number, value=trial.value, lead=lead, params=params, seconds=seconds
        )
    if state == "PRUNED":
        return _(
            "trial {number}: pruned after epoch {epoch}, its val_loss behind the median  ({params}; {seconds:.1f} s)"
        ).format(number=trial.number, epoch=trial.last_step, params=params, seconds=seconds)
    reason = trial.user_attrs.get("error", _("see the trial's run directory"))
    return _("trial {number}: failed: {reason}  ({params})").format(number=trial.number, reason=reason, params=params)


def _best_number(study) -> int | None:
    try:
        return int(study.best_trial.number)
    except ValueError:  # no trial has completed
        return None


def engine_url(storage: str) -> str:
    """The storage URL with its PostgreSQL driver named: psycopg (3), the one the sweep extra installs.

    SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg, 2.0 as psycopg2; naming it makes the URL a
    user copies from the README work with either."""
    for prefix in ("postgresql://", "postgres://"):
        if storage.startswith(prefix):
            return "postgresql+psycopg://" + storage[len(prefix) :]
    return storage


def open_study(storage: str, study_name: str, pruner, attempts: int = 5):
    """Create the study, or join it where another process (here or on another machine) already made it.

    Workers started together race to create Optuna's tables and the study row; the loser of such a race
    gets a database error for something that now exists, and simply tries again (a few times, briefly)."""
    optuna = _optuna()
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna; its interface is ours to track
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                rdb = optuna.storages.RDBStorage(
                    engine_url(storage), heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
                )
            return optuna.create_study(
                storage=rdb, study_name=study_name, direction="minimize", load_if_exists=True, pruner=pruner
            )
        except sqlalchemy.exc.IntegrityError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
        except (ImportError, ValueError, optuna.exceptions.OptunaError, sqlalchemy.exc.SQLAlchemyError) as exc:
            raise UserError(
                _("cannot open the study storage {storage}: {reason}.").format(storage=storage, reason=exc)
            ) from None
    raise AssertionError("unreachable")


def sampler_seed(seed: int, trial_number: int) -> int:
    """The seed of one trial's draws: the same trial number draws the same values, another number others."""
    import numpy as np

    return int(np.random.SeedSequence([seed, trial_number]).generate_state(1)[0])


class TrialSeededSampler:
    """Optuna's TPE sampler, seeded afresh for each trial from the sweep's seed and the trial's number.

    One seeded sampler per process would make workers that start together draw the same values (each
    would begin from the same seed and the same empty study); the trial number is unique in the study,
    whichever worker asks for it, so every trial's draws are its own and reproducible. TPE keeps no state
    between trials besides its random generator (it reads the finished trials from the storage), so a
    fresh one per trial loses nothing."""

    def __init__(self, seed: int):
        self.seed = seed
        self._samplers: dict[int, Any] = {}

    def _for(self, trial):
        sampler = self._samplers.get(trial.number)
        if sampler is None:
            sampler = _optuna().samplers.TPESampler(seed=sampler_seed(self.seed, trial.number))
            self._samplers = {trial.number: sampler}  # one trial at a time per worker
        return sampler

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._samplers = {}


def fail_orphaned_trials(study) -> list[int]:
    """Mark failed the RUNNING trials whose process ran on this machine and is gone (killed, crashed, rebooted).

    Trials of other machines are left to Optuna's heartbeat, which fails them once they fall silent.
    Returns the numbers of the trials marked failed."""
    from optuna.trial import TrialState

    here, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker") or {}
        if worker.get("host") == here and not _process_alive(int(worker.get("pid", -1))):
            study.tell(trial.number, state=TrialState.FAIL)
            failed.append(trial.number)
            _hide_run_of_failed(trial.user_attrs.get("run_dir"))
    return failed


def _hide_run_of_failed(run_dir: str | None) -> None:
    """A process killed after its trial's run was written but before the study heard of it leaves a run that
    the study counts as failed: move it out of the listing (a hidden name), so the study and the folder agree."""
    if run_dir and Path(run_dir).is_dir():
        Path(run_dir).rename(Path(run_dir).with_name(f".{Path(run_dir).name}.failed"))


def _process_alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():  # our own pid: a new process that reuses a dead one's number
        return False
    try:
        os.kill(pid, 0)  # signal 0 checks existence only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


class PruningCallback(Callback):
    """Reports each epoch's validation loss to the trial and ends training when Optuna's pruner says so."""

    def __init__(self, trial):
        super().__init__()
        self.trial, self.pruned_at = trial, None

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.trial.report(logs["val_loss"], step=epoch + 1)
        if self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.model.stop_training = True


def write_best(study, path: Path, settings: SweepSettings) -> tuple[Path | None, Path | None]:
    """best_spec.yaml and best.json for the best finished trial so far (None when none finished)."""
    try:
        best = study.best_trial
    except ValueError:
        return None, None
    spec_file = path / BEST_SPEC
    # Workers sharing one `--out` each write the best so far when they finish: whole files only.
    spec_text = yaml.safe_dump(best.user_attrs["spec"], sort_keys=False)
    write_file_atomically(spec_file, lambda tmp: tmp.write_text(spec_text))
    lr = best.params.get("lr", settings.lr)
    batch_size = best.params.get("batch_size", settings.batch_size)
    retrain = {**settings.train_kwargs(), "model": str(spec_file), "lr": lr, "batch_size": batch_size}
    record = {
        "trial": best.number,
        "val_loss": best.value,
        "params": best.params,
        "run_dir": best.user_attrs["run_dir"],
        "train": retrain,
        "command": retrain_command(retrain),
    }
    record_text = json.dumps(record, indent=2) + "\n"
    write_file_atomically(path / BEST_JSON, lambda tmp: tmp.write_text(record_text))
    return Path(best.user_attrs["run_dir"]), spec_file


def retrain_command(kwargs: dict[str, Any]) -> str:
    """The `convscope train` command line that reruns the best trial with the same settings."""
    flags = ["convscope", "train"]
    for key, value in kwargs.items():
        if value is not None:
            flags += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(flags)


def trial_run_dirs(study_dir: str | Path) -> list[Path]:
    """Every finished trial's run directory, by trial number: what `convscope compare <study>` lists."""
    folder = Path(study_dir) / TRIALS_DIR
    if not folder.is_dir():
        raise UserError(
            _("{study_dir} is not a sweep directory (it has no {TRIALS_DIR}/ folder).").format(
                study_dir=study_dir, TRIALS_DIR=TRIALS_DIR
            )
        )
    # Hidden folders are runs still being written (or left half-written by a killed trial): not runs.
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / WEIGHTS).is_file())


def study_table(study) -> str:
    """One line per trial: number, state, best validation loss, what was drawn."""
    lines = [f"{'trial':>5}  {'state':<8}  {'val_loss':>8}  params"]
    for t in study.trials:
        value = f"{t.value:8.4f}" if t.value is not None else f"{'-':>8}"
        params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
        lines.append(f"{t.number:>5}  {t.state.name.lower():<8}  {value}  {params}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise UserError(_("sweeps need Optuna: pip install 'convscope[sweep]'.")) from None
    return optuna


def is_storage_url(text: str) -> bool:
    """A database URL (postgresql://..., sqlite:///...) rather than a path."""
    return "://" in str(text)


@dataclass
class StudyRuns:
    """The run directories of a study's finished trials: those on this machine, and those elsewhere."""

    here: list[Path]
    elsewhere: list[tuple[str, str]]  # (host, run directory) of trials whose directory is not on this machine


def study_runs(storage: str, study_name: str | None = None) -> StudyRuns:
    """The trials' run directories of a study read from its storage (what `convscope compare URL` lists).

    Completed and pruned trials count (a pruned trial leaves a run too); failed and running ones do not."""
    optuna = _optuna()
    import sqlalchemy.exc
    from optuna.trial import TrialState

    try:
        if study_name is None:
            names = optuna.study.get_all_study_names(engine_url(storage))
            if len(names) != 1:
                raise UserError(
                    ngettext(
                        "{storage} holds {count} study ({names}); choose one with --study-name.",
                        "{storage} holds {count} studies ({names}); choose one with --study-name.",
                        len(names),
                    ).format(storage=storage, count=len(names), names=", ".join(names) or "-")
                )
            study_name = names[0]
        study = optuna.load_study(study_name=study_name, storage=engine_url(storage))
    except KeyError:
        raise UserError(_("{storage} holds no study named {name}.").format(storage=storage, name=study_name)) from None
    except (ImportError, ValueError, optuna.exceptions.OptunaError, sqlalchemy.exc.SQLAlchemyError) as exc:
        raise UserError(
            _("cannot open the study storage {storage}: {reason}.").format(storage=storage, reason=exc)
        ) from None
    here: list[Path] = []
    elsewhere: list[tuple[str, str]] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        run_dir = trial.user_attrs.get("run_dir")
        if not run_dir:
            continue
        if (Path(run_dir) / WEIGHTS).is_file():
            here.append(Path(run_dir))
        else:
            elsewhere.append(((trial.user_attrs.get("worker") or {}).get("host", "?"), run_dir))
    return StudyRuns(here, elsewhere)


def expand_study_dirs(paths: list[str | Path], study_name: str | None = None) -> StudyRuns:
    """Run directories for `convscope compare`: a sweep directory stands for all its trials' runs, and so
    does a storage URL (its study's trials whose run directories are on this machine; the others are
    `elsewhere`, read in the same pass over the storage)."""
    out = StudyRuns([], [])
    for path in paths:
        if is_storage_url(str(path)):
            runs = study_runs(str(path), study_name)
            if not runs.here:
                raise UserError(
                    _("{storage}: none of the study's finished trials has its run directory on this machine.").format(
                        storage=path
                    )
                )
            out.here.extend(runs.here)
            out.elsewhere.extend(runs.elsewhere)
        else:
            out.here.extend(trial_run_dirs(path) if (Path(path) / TRIALS_DIR).is_dir() else [Path(path)])
    return out
