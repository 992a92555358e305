"""Training: the epoch loop, callbacks, checkpoints, settings, history, devices."""

from .callbacks import (
    Callback,
    CSVLogger,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
    TerminateOnNaN,
)
from .device import pick_device
from .early_stopping import EarlyStopping
from .fit import PRECISIONS, Tensors, evaluate_tensors, fit
from .history import History
from .settings import FitSettings, TrainSettings
from .trained_model import TrainedModel

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "FitSettings",
    "History",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "PRECISIONS",
    "ReduceLROnPlateau",
    "Tensors",
    "TensorBoard",
    "TerminateOnNaN",
    "TrainSettings",
    "TrainedModel",
    "evaluate_tensors",
    "fit",
    "pick_device",
]
