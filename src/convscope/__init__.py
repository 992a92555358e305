"""convscope: train, explain and serve small convolutional image classifiers.

import convscope as cs
data = cs.load("notMNIST_small.mat", class_names="ABCDEFGHIJ")
train, test = data.split(test_size=0.2, seed=0)
model = cs.build("cnn", input_shape=data.input_shape, num_classes=data.num_classes)
cs.summary(model)
run = cs.fit(model, train, validation_split=0.2, epochs=100,
             early_stopping=cs.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True))
result = cs.evaluate(run, test)
"""

from ._version import __version__
from .data import Dataset, MinMaxScaler, datasets, describe, load, read_image
from .data.streaming import stream
from .errors import UserError
from .evaluation import EvaluationResult
from .experiment import ExperimentResult, experiment
from .i18n import set_language
from .models import ModelSummary, build
from .models import summary as _summary
from .report.result import DrawableResult, evaluate
from .runs import load_run, load_test_set, save_run
from .training import (
    Callback,
    CSVLogger,
    EarlyStopping,
    FitSettings,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
    TerminateOnNaN,
    TrainedModel,
    TrainSettings,
    fit,
)
from .workflow import TrainResult, train


def summary(model, input_shape=None, print_fn="auto", num_classes: int = 10) -> ModelSummary:
    """Print the Keras-style summary (with size formulas, FLOPs, receptive fields) and return it.

    `model`: a built model, a preset name ("cnn"), or a spec (a dict, or a .yaml/.json path), summarised on
    `input_shape` (28 x 28 x 1 when not given) with `num_classes` outputs, without allocating its weights.

    `print_fn="auto"` prints with `print`, except in a Jupyter kernel: there the returned summary shows
    itself as the report's table, and printing it as text too would say everything twice.
    """
    result = _summary(model, input_shape, num_classes)
    if print_fn == "auto":
        from .display.notebook import in_notebook

        print_fn = None if in_notebook() else print
    if print_fn is not None:
        print_fn(str(result))
    return result


def report(run, result=None, path=None, samples=None):
    """Write the self-contained report.html of a run (a run directory, or a trained model with its test
    `result`, saved first as a run) and return its path; `path` may name the .html file or the run folder.
    See `convscope.report.html.report`."""
    from .report.html import report as write  # matplotlib (~0.3 s to import) loads only when a report is drawn

    return write(run, result, path, samples)


__all__ = [
    "CSVLogger",
    "Callback",
    "FitSettings",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TensorBoard",
    "TerminateOnNaN",
    "TrainSettings",
    "Dataset",
    "DrawableResult",
    "EarlyStopping",
    "EvaluationResult",
    "ExperimentResult",
    "History",
    "MinMaxScaler",
    "ModelSummary",
    "TrainResult",
    "TrainedModel",
    "UserError",
    "build",
    "datasets",
    "describe",
    "evaluate",
    "experiment",
    "fit",
    "load",
    "load_run",
    "load_test_set",
    "__version__",
    "read_image",
    "report",
    "save_run",
    "set_language",
    "stream",
    "summary",
    "train",
]
