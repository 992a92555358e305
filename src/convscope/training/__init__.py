"""Training: the epoch loop, callbacks, checkpoints, settings, history, devices."""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
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

attach(
    __name__,
    {
        "Callback": ".callbacks",
        "CSVLogger": ".callbacks",
        "LearningRateScheduler": ".callbacks",
        "ModelCheckpoint": ".callbacks",
        "ReduceLROnPlateau": ".callbacks",
        "TensorBoard": ".callbacks",
        "TerminateOnNaN": ".callbacks",
        "pick_device": ".device",
        "EarlyStopping": ".early_stopping",
        "PRECISIONS": ".fit",
        "Tensors": ".fit",
        "evaluate_tensors": ".fit",
        "fit": ".fit",
        "History": ".history",
        "FitSettings": ".settings",
        "TrainSettings": ".settings",
        "TrainedModel": ".trained_model",
    },
)

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
