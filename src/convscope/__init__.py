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

import sys
from typing import TYPE_CHECKING

from ._lazy import attach
from ._version import __version__

# Each public name loads its module on first use: `import convscope` and `convscope --help` stay light
# (torch alone takes seconds to import on a busy machine). Type checkers read the names from here.
if TYPE_CHECKING:
    from .data.dataset import Dataset
    from .data.describe import describe
    from .data.images import read_image
    from .data.load import load
    from .data.named import datasets
    from .data.scaling import MinMaxScaler
    from .data.streaming import stream
    from .errors import UserError
    from .evaluation.evaluate import EvaluationResult, evaluate
    from .experiment import ExperimentResult, experiment
    from .i18n import set_language
    from .models.build import build
    from .models.summary import ModelSummary
    from .presentation.inspection import (
        show_feature_maps,
        show_filters,
        show_grad_cam,
        show_mistakes,
        show_random,
        show_top_losses,
    )
    from .runs import load_run, load_test_set, save_run
    from .training.callbacks import (
        Callback,
        CSVLogger,
        LearningRateScheduler,
        ModelCheckpoint,
        ReduceLROnPlateau,
        TensorBoard,
        TerminateOnNaN,
    )
    from .training.early_stopping import EarlyStopping
    from .training.fit import fit
    from .training.history import History
    from .training.settings import FitSettings, TrainSettings
    from .training.trained_model import TrainedModel
    from .workflow import TrainResult, train


def summary(model, input_shape=None, print_fn="auto", num_classes: int = 10) -> "ModelSummary":
    """Print the Keras-style summary (with size formulas, FLOPs, receptive fields) and return it.

    `model`: a built model, a preset name ("cnn"), or a spec (a dict, or a .yaml/.json path), summarised on
    `input_shape` (28 x 28 x 1 when not given) with `num_classes` outputs, without allocating its weights.

    `print_fn="auto"` prints with `print`, except in a Jupyter kernel: there the returned summary shows
    itself as the report's table, and printing it as text too would say everything twice.
    """
    from .models.summary import summary as explain

    result = explain(model, input_shape, num_classes)
    if print_fn == "auto":
        from .training.progress import in_notebook

        print_fn = None if in_notebook() else print
    if print_fn is not None:
        print_fn(str(result))
    return result


def report(run, result=None, path=None, samples=None):
    """Write the self-contained report.html of a run (a run directory, or a trained model with its test
    `result`, saved first as a run) and return its path; `path` may name the .html file or the run folder.
    See `convscope.presentation.report.report`."""
    from .presentation.report import report as write  # matplotlib (~0.3 s to import) loads only when a report is drawn

    return write(run, result, path, samples)


attach(
    __name__,
    {
        "Dataset": ".data.dataset",
        "MinMaxScaler": ".data.scaling",
        "datasets": ".data.named",
        "describe": ".data.describe",
        "load": ".data.load",
        "read_image": ".data.images",
        "stream": ".data.streaming",
        "UserError": ".errors",
        "EvaluationResult": ".evaluation.evaluate",
        "ExperimentResult": ".experiment",
        "experiment": ".experiment",
        "set_language": ".i18n",
        "ModelSummary": ".models.summary",
        "build": ".models.build",
        "evaluate": ".evaluation.evaluate",
        "show_feature_maps": ".presentation.inspection",
        "show_filters": ".presentation.inspection",
        "show_grad_cam": ".presentation.inspection",
        "show_mistakes": ".presentation.inspection",
        "show_random": ".presentation.inspection",
        "show_top_losses": ".presentation.inspection",
        "load_run": ".runs",
        "load_test_set": ".runs",
        "save_run": ".runs",
        "Callback": ".training.callbacks",
        "CSVLogger": ".training.callbacks",
        "EarlyStopping": ".training.early_stopping",
        "FitSettings": ".training.settings",
        "History": ".training.history",
        "LearningRateScheduler": ".training.callbacks",
        "ModelCheckpoint": ".training.callbacks",
        "ReduceLROnPlateau": ".training.callbacks",
        "TensorBoard": ".training.callbacks",
        "TerminateOnNaN": ".training.callbacks",
        "TrainedModel": ".training.trained_model",
        "TrainSettings": ".training.settings",
        "fit": ".training.fit",
        "TrainResult": ".workflow",
        "train": ".workflow",
    },
    own=("report", "summary"),
)

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
    "show_feature_maps",
    "show_filters",
    "show_grad_cam",
    "show_mistakes",
    "show_random",
    "show_top_losses",
    "stream",
    "summary",
    "train",
]


def _install_notebook_views() -> None:
    """In a running IPython shell (Jupyter, Colab, the terminal IPython), give its display formatter the views
    of convscope's objects (`presentation.notebook`). Elsewhere IPython is never imported for it."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        from .presentation.notebook import install

        install(shell.display_formatter)


_install_notebook_views()
