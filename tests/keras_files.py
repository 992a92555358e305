"""Keras model files built by the tests themselves, valid or hostile, without Keras.

The valid ones come from the tf.keras 2.x fixtures (tests/fixtures/tf_keras2): their architecture JSON and
weights, written either as the legacy HDF5 Keras wrote (`legacy_h5`) or in a Keras 3 `.keras` archive's
layout (`keras_archive`: config.json, metadata.json, model.weights.h5 with layers/<path>/vars/0, 1, ...).
The hostile ones are these with one thing changed, by test_keras_hostile.py and test_fuzz_keras.py.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FIXTURES = Path(__file__).parent / "fixtures" / "tf_keras2"
ROLES = {
    "Conv2D": ("kernel", "bias"),
    "Dense": ("kernel", "bias"),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
}


def config(name: str = "sequential") -> dict[str, Any]:
    """The architecture JSON of a fixture model ('sequential' or 'functional')."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def weights(name: str = "sequential") -> dict[str, list[np.ndarray]]:
    """{layer name: its variables in Keras' order} of a fixture model."""
    out: dict[str, list[np.ndarray]] = {}
    with h5py.File(FIXTURES / f"{name}.h5", "r") as f:
        for layer in config(name)["config"]["layers"]:
            kind, layer_name = layer["class_name"], layer["config"]["name"]
            if kind not in ROLES:
                continue
            group = f["model_weights"][layer_name]
            stored = {str(n).rsplit("/", 1)[-1].split(":")[0]: str(n) for n in group.attrs["weight_names"]}
            out[layer_name] = [np.asarray(group[stored[r]]) for r in ROLES[kind] if r in stored]
    return out


def legacy_h5(path: Path, name: str = "sequential") -> Path:
    """A copy of the fixture's legacy .h5 at `path`."""
    shutil.copyfile(FIXTURES / f"{name}.h5", path)
    return path


def weights_h5(model: dict[str, Any], arrays: dict[str, list[np.ndarray]]) -> bytes:
    """model.weights.h5 of a .keras archive: layers/<layer>/vars/<i>, each vars group naming its layer."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for layer_name, values in arrays.items():
            group = f.create_group(f"layers/{layer_name}/vars")
            group.attrs["name"] = layer_name
            for i, value in enumerate(values):
                group.create_dataset(str(i), data=value)
    return buffer.getvalue()


def keras_archive(
    path: Path,
    model: dict[str, Any] | None = None,
    arrays: dict[str, list[np.ndarray]] | None = None,
    *,
    weights_bytes: bytes | None = None,
    config_bytes: bytes | None = None,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """A Keras 3 style .keras archive of the sequential fixture, or of what is given instead."""
    model = config() if model is None else model
    arrays = weights() if arrays is None else arrays
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        archive.writestr("config.json", config_bytes if config_bytes is not None else json.dumps(model))
        archive.writestr("model.weights.h5", weights_bytes if weights_bytes is not None else weights_h5(model, arrays))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def with_layer_config(model: dict[str, Any], layer_name: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of `model` with fields of one layer's config set (a value of `...` removes the field)."""
    model = copy.deepcopy(model)
    for layer in model["config"]["layers"]:
        if layer["config"].get("name") == layer_name:
            for key, value in changes.items():
                if value is ...:
                    layer["config"].pop(key, None)
                else:
                    layer["config"][key] = value
            return model
    raise KeyError(layer_name)


def inserted(model: dict[str, Any], index: int, class_name: str, **layer_config: Any) -> dict[str, Any]:
    """A deep copy of a Sequential `model` with a layer inserted at `index` of its layer list."""
    model = copy.deepcopy(model)
    model["config"]["layers"].insert(
        index, {"module": "keras.layers", "class_name": class_name, "config": layer_config, "registered_name": None}
    )
    return model


def raw_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip archive written byte by byte: (name, compressed data, declared size, method, flags) per member.

    For archives zipfile will not write: sizes that lie, unknown methods, the encryption flag, and
    deflate bombs whose compressed stream is made without ever holding the inflated bytes."""
    body, directory = b"", b""
    for name, data, size, method, flags in members:
        encoded = name.encode()
        crc = 0
        local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0, crc, len(data), size, len(encoded), 0)
        directory += (
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                20,
                20,
                flags,
                method,
                0,
                0,
                crc,
                len(data),
                size,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                len(body),
            )
            + encoded
        )
        body += local + encoded + data
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(body), 0)
    return body + directory + end


def deflate_bomb(size: int, unit: bytes = b" ") -> bytes:
    """A raw deflate stream of `size` copies of `unit`, made from one compressed megabyte repeated.

    After a full flush the compressor forgets what it saw, so each further megabyte compresses to the same
    bytes: the stream is built in milliseconds and inflates to `size` bytes (a multiple of 1 MiB)."""
    chunk = unit * (2**20 // len(unit))
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    return first + again * (size // len(chunk) - 1) + packer.flush()
