"""Fuzzing Keras model files: generated .keras archives and .h5 files whose config fields, HDF5 structure or
bytes were changed are imported (and summarised) as a valid model or refused in one `UserError` sentence.

Memory stays bounded by construction: every size a mutation can claim is checked before it is allocated
(test_keras_hostile.py measures the largest claims in a child process)."""

from __future__ import annotations

import contextlib
import copy
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from convscope.interop.keras_config import read_keras_model
from convscope.interop.keras_import import import_keras
from fuzzing import scaled, valid_or_user_error
from keras_files import FIXTURES, config, keras_archive, weights, weights_h5

MODELS = {"sequential": config("sequential"), "functional": config("functional")}
ARRAYS = {"sequential": weights("sequential"), "functional": weights("functional")}
FIELDS = [
    "filters", "kernel_size", "strides", "padding", "activation", "use_bias", "units", "rate", "momentum",
    "epsilon", "center", "scale", "axis", "pool_size", "data_format", "dilation_rate", "groups", "name",
    "batch_input_shape", "target_shape", "offset", "keepdims", "noise_shape",
]  # fmt: skip
TOP_FIELDS = ["class_name", "config", "layers", "input_layers", "output_layers", "name", "inbound_nodes", "module"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.sampled_from([0, 1, -1, 2, 3, 10**9, 2**31, 2**63])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["", "same", "valid", "relu", "softmax", "false", "channels_first", "conv2d", "training"])
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _check(path: Path) -> None:
    valid_or_user_error(import_keras, path, scale=(0, 255))
    valid_or_user_error(read_keras_model, path)


@scaled(0.05)
@given(
    which=st.sampled_from(list(MODELS)),
    edits=st.lists(
        st.tuples(st.integers(0, 20), st.sampled_from(FIELDS + TOP_FIELDS), json_values | st.just(...)),
        min_size=1,
        max_size=3,
    ),
)
def test_config_mutations_import_or_fail_in_one_sentence(which, edits):
    model = copy.deepcopy(MODELS[which])
    layers = model["config"]["layers"]
    for index, field, value in edits:
        layer = layers[index % len(layers)]
        target: dict[str, Any]
        if field in TOP_FIELDS:
            target = (layer, model["config"], model)[index % 3]
        else:
            target = layer["config"] if isinstance(layer.get("config"), dict) else layer
        if value is ...:
            target.pop(field, None)
        else:
            target[field] = value
    with tempfile.TemporaryDirectory() as tmp:
        _check(keras_archive(Path(tmp) / "m.keras", model, ARRAYS[which]))


def _change_hdf5(f: h5py.File, op: str, path: str, value: Any) -> None:
    if path not in f:
        return
    if op == "delete":
        del f[path]
    elif op == "dataset":
        del f[path]
        f.create_dataset(path, data=value)
    elif op == "soft link":
        del f[path]
        f[path] = h5py.SoftLink(value)
    elif op == "attribute":
        f[path].attrs["name" if "vars" in path else "weight_names"] = value
    elif op == "rename" and not path.endswith("/"):
        f.move(path, f"{path.rsplit('/', 1)[0]}/{value}")


def _datasets(f: h5py.File) -> list[str]:
    out: list[str] = []
    f.visit(out.append)
    return sorted(out)


hdf5_values = st.one_of(
    st.builds(np.zeros, st.tuples(st.integers(0, 5)).map(tuple), st.sampled_from(["<f4", "<f8", "<i4", "<f2"])),
    st.sampled_from(
        [np.float32(np.nan), np.array([np.inf, 1, 2], np.float32), np.array([b"x", b"y"]), np.zeros((3, 3, 1, 4))]
    ),
    st.sampled_from(["/", "/nowhere", "/layers", "/model_weights", "..", "0", "2", "7"]),
    st.binary(max_size=6),
    st.text(max_size=6),
)


@scaled(0.05)
@given(
    container=st.sampled_from(["keras", "h5"]),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["delete", "dataset", "soft link", "attribute", "rename"]), st.integers(0, 200), hdf5_values
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_hdf5_structure_mutations_import_or_fail_in_one_sentence(container, edits):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("m.keras" if container == "keras" else "m.h5")
        h5 = Path(tmp) / "w.h5"
        if container == "keras":
            h5.write_bytes(weights_h5(MODELS["sequential"], ARRAYS["sequential"]))
        else:
            h5.write_bytes((FIXTURES / "sequential.h5").read_bytes())
        with h5py.File(h5, "r+") as f:
            for op, index, value in edits:
                names = _datasets(f)
                # h5py refuses to write some changes: then there is nothing new to read back
                with contextlib.suppress(TypeError, ValueError, KeyError, OSError, RuntimeError):
                    if names:
                        _change_hdf5(f, op, names[index % len(names)], value)
        if container == "keras":
            keras_archive(path, weights_bytes=h5.read_bytes())
        else:
            h5.rename(path)
        _check(path)


@scaled(0.05)
@given(
    container=st.sampled_from(["keras", "h5"]),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=6),
    cut=st.none() | st.floats(0.05, 1.0),
)
def test_byte_mutations_import_or_fail_in_one_sentence(container, flips, cut):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("m.keras" if container == "keras" else "m.h5")
        if container == "keras":
            keras_archive(path)
        else:
            path.write_bytes((FIXTURES / "sequential.h5").read_bytes())
        data = bytearray(path.read_bytes())
        for where, mask in flips:
            data[int(where * len(data))] ^= mask
        if cut is not None:
            data = data[: max(1, int(cut * len(data)))]
        path.write_bytes(bytes(data))
        _check(path)
