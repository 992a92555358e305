"""The data stage: any supported file or built-in name -> a validated `Dataset`."""

from .builtin import BUILTIN_NAMES
from .dataset import Dataset
from .describe import describe, imbalance_warning
from .images import read_image
from .load import load
from .named import DatasetInfo, datasets
from .scaling import MinMaxScaler

__all__ = [
    "BUILTIN_NAMES",
    "Dataset",
    "DatasetInfo",
    "datasets",
    "MinMaxScaler",
    "describe",
    "imbalance_warning",
    "load",
    "read_image",
]
