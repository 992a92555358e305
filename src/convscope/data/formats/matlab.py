"""MATLAB `.mat` files: v4-v7 through scipy, v7.3 (HDF5 inside) through h5py.

MATLAB stores arrays column-major; h5py reads that memory row-major, so every axis comes out
reversed ((28, 28, N) in MATLAB reads as (N, 28, 28)).  Transposing v7.3 arrays gives back the
shape MATLAB shows, so both versions reach the layout rule with the same shape.

scipy and h5py are imported by the functions that read, so `import convscope` (and every other format)
does not pay for them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...i18n import _
from ..raw import RawData, RawSplit, limits
from .arrays import pick_keys


def load_mat(path: Path) -> RawData:
    import h5py

    file = str(path)
    try:
        arrays = _read_v73(path) if h5py.is_hdf5(path) else _read_v5(path)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - scipy/h5py raise IndexError, TypeError... on bad bytes
        raise UserError(
            _("{file}: not a readable MATLAB .mat file ({error}: {exc}).").format(
                file=file, error=type(exc).__name__, exc=exc
            )
        ) from None
    (x, y), test = pick_keys(list(arrays), file)
    train = RawSplit(arrays[x], arrays[y], file, x, y)
    return RawData(train, RawSplit(arrays[test[0]], arrays[test[1]], file, *test) if test else None)


def _read_v5(path: Path) -> dict[str, np.ndarray]:
    import scipy.io

    # Variable headers first (scipy decompresses only their start): a compressed variable that
    # declares billions of values is refused before loadmat inflates it.
    allowed = limits()
    for name, shape, matlab_class in scipy.io.whosmat(path):
        count = math.prod(int(d) for d in shape)
        allowed.check_bytes(
            count * 8,
            f"{path}: '{name}'",
            _("its {shape} {dtype} values").format(shape=" x ".join(map(str, shape)), dtype=matlab_class),
        )
    contents = scipy.io.loadmat(path, chars_as_strings=True)
    return {k: v for k, v in contents.items() if not k.startswith("__")}


def _read_v73(path: Path) -> dict[str, np.ndarray]:
    import h5py

    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        for key, item in f.items():
            if key.startswith("#") or not isinstance(item, h5py.Dataset):
                continue  # '#refs#' holds cell contents; groups are structs
            matlab_class = item.attrs.get("MATLAB_class", b"")
            if isinstance(matlab_class, bytes):
                matlab_class = matlab_class.decode()
            if item.dtype.kind == "O":
                raise UserError(
                    _("{path}: '{key}' is a MATLAB cell array; store labels as numbers or a char matrix.").format(
                        path=path, key=key
                    )
                )
            limits().check_bytes(
                item.size * item.dtype.itemsize,
                f"{path}: '{key}'",
                _("its {shape} {dtype} values").format(shape=" x ".join(map(str, item.shape)), dtype=item.dtype),
            )
            values = np.asarray(item[()]).T
            if matlab_class == "char":  # uint16 codes, one row per label
                values = np.array(["".join(map(chr, row)).strip() for row in np.atleast_2d(values)])
            arrays[key] = values
    return arrays
