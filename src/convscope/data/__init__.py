"""The data stage: any supported file or built-in name -> a validated `Dataset`."""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    from .builtin import BUILTIN_NAMES
    from .dataset import Dataset
    from .describe import describe, imbalance_warning
    from .images import read_image
    from .load import load
    from .named import DatasetInfo, datasets
    from .scaling import MinMaxScaler

attach(
    __name__,
    {
        "BUILTIN_NAMES": ".builtin",
        "Dataset": ".dataset",
        "describe": ".describe",
        "imbalance_warning": ".describe",
        "read_image": ".images",
        "load": ".load",
        "DatasetInfo": ".named",
        "datasets": ".named",
        "MinMaxScaler": ".scaling",
    },
)

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
