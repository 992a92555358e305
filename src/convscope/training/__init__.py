"""Training: the fit loop, early stopping, history, devices."""

from .device import pick_device
from .early_stopping import EarlyStopping
from .fit import PRECISIONS, Tensors, evaluate_tensors, fit
from .history import History
from .trained_model import TrainedModel

__all__ = ["EarlyStopping", "History", "PRECISIONS", "Tensors", "TrainedModel", "evaluate_tensors", "fit", "pick_device"]
