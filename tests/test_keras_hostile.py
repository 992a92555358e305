"""Keras files from strangers: every hostile class is one sentence and exit 2, reads nothing outside the file,
and stays within bounded memory. Each file is built here (h5py, zipfile, raw bytes); see tests/keras_files.py."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from convscope.cli import main
from convscope.errors import UserError
from convscope.interop.keras_import import import_keras
from keras_files import (
    FIXTURES,
    config,
    deflate_bomb,
    inserted,
    keras_archive,
    legacy_h5,
    raw_zip,
    weights,
    weights_h5,
    with_layer_config,
)

SRC = Path(__file__).resolve().parents[1] / "src"
SECRET = b"TOP-SECRET-KEY-" * 64  # 960 bytes: as many as the conv2d kernel (3*3*1*4 floats... padded below)


def refused(tmp_path: Path, model: Path, capsys, *words: str) -> str:
    """`convscope import` exits 2 with one sentence naming `words`, writes no run and prints no traceback."""
    out = tmp_path / "run"
    code = main(["import", str(model), "--out", str(out), "--scale", "0,255"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err and err, err
    assert not out.exists()
    for word in words:
        assert word in err, err
    return err


def no_secret_under(tmp_path: Path) -> None:
    for file in tmp_path.rglob("*"):
        if file.is_file() and file.name != "secret.bin" and file.suffix not in (".h5", ".keras"):
            assert b"TOP-SECRET" not in file.read_bytes(), file


def test_the_files_built_here_are_valid_models(tmp_path):
    """The oracle for every mutation below: unchanged, both layouts import and predict what tf.keras did."""
    expected = np.load(FIXTURES / "expected.npz")
    for path in (keras_archive(tmp_path / "ok.keras"), legacy_h5(tmp_path / "ok.h5")):
        probabilities = import_keras(path, scale=(0, 255)).trained.predict_proba(expected["images"])
        np.testing.assert_allclose(probabilities, expected["sequential"], atol=1e-5)


# ---------------------------------------------------------------- nothing outside the file


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SECRET)
    return secret


def _secret_h5(tmp_path: Path) -> Path:
    path = tmp_path / "secret.h5"
    values = np.frombuffer(SECRET[:144], np.float32).reshape(3, 3, 1, 4)
    with h5py.File(path, "w") as f:
        f.create_dataset("kernel", data=values)
        f.create_group("conv2d").create_dataset("kernel:0", data=values)
        f["conv2d/bias:0"] = np.zeros(4, np.float32)
    return path


def _external_storage(f: h5py.File, name: str, tmp_path: Path) -> None:
    del f[name]
    f.create_dataset(name, shape=(3, 3, 1, 4), dtype="<f4", external=[(str(_secret(tmp_path)), 0, 144)])


def _external_link(f: h5py.File, name: str, tmp_path: Path) -> None:
    del f[name]
    f[name] = h5py.ExternalLink(str(_secret_h5(tmp_path)), "/kernel")


def _virtual(f: h5py.File, name: str, tmp_path: Path) -> None:
    del f[name]
    layout = h5py.VirtualLayout(shape=(3, 3, 1, 4), dtype="<f4")
    layout[:] = h5py.VirtualSource(str(_secret_h5(tmp_path)), "kernel", shape=(3, 3, 1, 4))
    f.create_virtual_dataset(name, layout)


def _linked_group(f: h5py.File, name: str, tmp_path: Path) -> None:  # a whole layer group elsewhere
    group = name.rsplit("/", 1)[0]
    del f[group]
    f[group] = h5py.ExternalLink(str(_secret_h5(tmp_path)), "/conv2d")


def _soft_through_external(f: h5py.File, name: str, tmp_path: Path) -> None:
    del f[name]
    f["elsewhere"] = h5py.ExternalLink(str(_secret_h5(tmp_path)), "/")
    f[name] = h5py.SoftLink("/elsewhere/kernel")


OUTSIDE = {
    "external storage": (_external_storage, "another file"),
    "external link": (_external_link, "external link"),
    "virtual dataset": (_virtual, "virtual dataset"),
    "external group": (_linked_group, "external link"),
    "soft link to an external link": (_soft_through_external, "external link"),
}


def _tampered_archive(tmp_path: Path, change) -> Path:
    buffer = tmp_path / "weights.h5"
    buffer.write_bytes(weights_h5(config(), weights()))
    with h5py.File(buffer, "r+") as f:
        change(f, "layers/conv2d/vars/0", tmp_path)
    return keras_archive(tmp_path / "evil.keras", weights_bytes=buffer.read_bytes())


@pytest.mark.parametrize("case", list(OUTSIDE))
@pytest.mark.parametrize("container", ["h5", "keras"])
def test_a_model_file_cannot_read_other_files(tmp_path, capsys, case, container):
    change, words = OUTSIDE[case]
    if container == "h5":
        model = legacy_h5(tmp_path / "evil.h5")
        with h5py.File(model, "r+") as f:
            change(f, "model_weights/conv2d/conv2d/kernel:0", tmp_path)
    else:
        model = _tampered_archive(tmp_path, change)
    refused(tmp_path, model, capsys, "evil.", words)
    no_secret_under(tmp_path)
    with pytest.raises(UserError):  # summary reads no weights, export has no run: the run never existed
        import_keras(model, scale=(0, 255))


def test_soft_links_inside_the_file_are_followed_and_dangling_or_looping_ones_refused(tmp_path, capsys):
    good = legacy_h5(tmp_path / "soft.h5")
    with h5py.File(good, "r+") as f:
        f["kept"] = f["model_weights/conv2d/conv2d/kernel:0"][()]
        del f["model_weights/conv2d/conv2d/kernel:0"]
        f["model_weights/conv2d/conv2d/kernel:0"] = h5py.SoftLink("/kept")
    import_keras(good, scale=(0, 255))
    for target, words in (("/nowhere", "does not hold"), ("/model_weights/conv2d/conv2d/kernel:0", "loops")):
        bad = legacy_h5(tmp_path / "bad.h5")
        with h5py.File(bad, "r+") as f:
            del f["model_weights/conv2d/conv2d/kernel:0"]
            f["model_weights/conv2d/conv2d/kernel:0"] = h5py.SoftLink(target)
        refused(tmp_path, bad, capsys, "soft link", words)


# ---------------------------------------------------------------- sizes and memory


def _bombs(tmp_path: Path) -> dict[str, Path]:
    gib3 = 3 * 2**30
    stream = deflate_bomb(gib3)
    honest = tmp_path / "bomb.keras"
    honest.write_bytes(raw_zip([("config.json", stream, gib3, zipfile.ZIP_DEFLATED, 0)]))
    lying = tmp_path / "liar.keras"
    lying.write_bytes(raw_zip([("config.json", stream, 1000, zipfile.ZIP_DEFLATED, 0)]))
    huge_weight = tmp_path / "huge.h5"  # a kernel declared as 1.46 TiB in a file of kilobytes
    legacy_h5(huge_weight)
    with h5py.File(huge_weight, "r+") as f:
        del f["model_weights/conv2d/conv2d/kernel:0"]
        f.create_dataset(
            "model_weights/conv2d/conv2d/kernel:0", shape=(2**20, 2**20, 1, 100), dtype="<f4", chunks=(1, 64, 1, 4)
        )
    dense = keras_archive(tmp_path / "dense.keras", with_layer_config(config(), "dense", units=10**9))
    return {"config bomb": honest, "lying sizes": lying, "huge weight": huge_weight, "10^9 units": dense}


BOMB_WORDS = {
    "config bomb": "declares 3,221,225,472 bytes",
    "lying sizes": "config.json",
    "huge weight": "(1048576, 1048576, 1, 100)",
    "10^9 units": "CONVSCOPE_MAX_PARAMS",
}


@pytest.mark.slow
def test_bombs_are_refused_quickly_in_bounded_memory(tmp_path):
    """All cases in one child process (one torch import), whose peak resident memory stays under 1 GB."""
    bombs = _bombs(tmp_path)
    assert all(p.stat().st_size < 4 * 2**20 for p in bombs.values())
    script = (
        "import sys\nfrom convscope.cli import main\n"
        "for path in sys.argv[1:]:\n"
        "    print(main(['import', path, '--out', path + '.run', '--scale', 'none']), flush=True)\n"
        # The child's own peak is VmHWM, the high-water mark of its address space. Not ru_maxrss: Linux carries it
        # across exec from the forked copy of this process, so the child would report this test session's peak.
        "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')]\n"
        "print(hwm[0].split()[1])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, bombs.values())],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=600,
    )
    *codes, peak_kib = result.stdout.split()
    peak_mib = int(peak_kib) / 2**10  # VmHWM is in kB
    assert codes == ["2"] * len(bombs), result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(bombs) and "Traceback" not in result.stderr, result.stderr[-2000:]
    for (name, path), line in zip(bombs.items(), lines):
        assert BOMB_WORDS[name] in line, line
        assert not Path(f"{path}.run").exists()
    assert peak_mib < 1000, f"peak {peak_mib:.0f} MiB"


def test_weights_are_checked_for_finiteness_type_and_shape_before_use(tmp_path, capsys):
    def legacy(change) -> Path:
        path = legacy_h5(tmp_path / "w.h5")
        with h5py.File(path, "r+") as f:
            name = "model_weights/dense/dense/bias:0"
            values = f[name][()]
            del f[name]
            change(f, name, values)
        return path

    cases = {
        "nan": (lambda f, n, v: f.create_dataset(n, data=np.array([np.nan, 1, 2], np.float32)), "not finite"),
        "inf": (lambda f, n, v: f.create_dataset(n, data=np.array([1, np.inf, 2], np.float64)), "not finite"),
        "text": (lambda f, n, v: f.create_dataset(n, data=np.array([b"a", b"b", b"c"])), "text values"),
        "compound": (
            lambda f, n, v: f.create_dataset(n, data=np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")])),
            "compound values",
        ),
        "scalar": (lambda f, n, v: f.create_dataset(n, data=np.float32(1)), "shape ()"),
        "integers": (lambda f, n, v: f.create_dataset(n, data=np.arange(3)), "int64 values"),
        "group": (lambda f, n, v: f.create_group(n), "group"),
        "wrong shape": (lambda f, n, v: f.create_dataset(n, data=np.zeros(5, np.float32)), "expected (3,)"),
    }
    for case, (change, words) in cases.items():
        err = refused(tmp_path, legacy(change), capsys, "layer 'dense' (Dense) bias", words)
        assert case and err


def test_weight_names_and_attributes_that_are_not_utf8_are_refused(tmp_path, capsys):
    bad = legacy_h5(tmp_path / "names.h5")
    with h5py.File(bad, "r+") as f:
        f["model_weights/dense"].attrs["weight_names"] = np.array([b"dense/kernel:0", b"\xff\xfe"], dtype="S")
    refused(tmp_path, bad, capsys, "weight_names", "UTF-8")
    config_bytes = legacy_h5(tmp_path / "config.h5")
    with h5py.File(config_bytes, "r+") as f:
        f.attrs["model_config"] = np.bytes_(b'{"class_name": "Sequential\xff"}')
    refused(tmp_path, config_bytes, capsys, "UTF-8")


def test_gaps_in_the_variables_of_an_archive_are_refused(tmp_path, capsys):
    buffer = tmp_path / "weights.h5"
    buffer.write_bytes(weights_h5(config(), weights()))
    with h5py.File(buffer, "r+") as f:
        f.move("layers/conv2d/vars/1", "layers/conv2d/vars/2")
    model = keras_archive(tmp_path / "gap.keras", weights_bytes=buffer.read_bytes())
    refused(tmp_path, model, capsys, "layer 'conv2d' (Conv2D)", "'0', '2'", "without gaps")


def test_a_truncated_h5_is_one_sentence(tmp_path, capsys):
    for cut in (0.3, 0.6, 0.9):
        data = (FIXTURES / "sequential.h5").read_bytes()
        model = tmp_path / "cut.h5"
        model.write_bytes(data[: int(len(data) * cut)])
        refused(tmp_path, model, capsys, "cut.h5")
        assert main(["summary", str(model)]) == 2
        assert "truncated" in capsys.readouterr().err


# ---------------------------------------------------------------- zip archives


def test_damaged_encrypted_or_strangely_compressed_archives_are_refused(tmp_path, capsys):
    text = json.dumps(config()).encode()
    cases = {
        # raw_zip writes CRC 0 in both headers, which no config text has
        "bad CRC": (raw_zip([("config.json", text, len(text), zipfile.ZIP_STORED, 0)]), "damaged"),
        "encrypted": (raw_zip([("config.json", text, len(text), zipfile.ZIP_STORED, 1)]), "encrypted"),
        "method 99": (raw_zip([("config.json", text, len(text), 99, 0)]), "compression method 99"),
    }
    for case, (archive, words) in cases.items():
        model = tmp_path / f"{case.replace(' ', '_')}.keras"
        model.write_bytes(archive)
        refused(tmp_path, model, capsys, "config.json", words)
        assert main(["summary", str(model)]) == 2, case
        capsys.readouterr()


def test_symlink_and_path_entries_are_never_followed_or_extracted(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    model = keras_archive(tmp_path / "paths.keras", extra={"../../x": b"escaped", "/abs/y": b"escaped"})
    import_keras(model, out=outside / "run", scale=(0, 255))
    assert not (tmp_path.parent / "x").exists() and not Path("/abs/y").exists()
    assert not any(p.name in ("x", "y") for p in tmp_path.rglob("*"))
    link = tmp_path / "link.keras"
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("config.json")
        info.external_attr = (0o120777 << 16) | 0x20
        archive.writestr(info, str(_secret(tmp_path)))
    refused(tmp_path, link, capsys, "symbolic link")


# ---------------------------------------------------------------- JSON


def test_json_nested_100000_deep_is_refused_before_parsing(tmp_path, capsys):
    from convscope.interop.containers import MAX_JSON_DEPTH, json_depth

    deep = b'{"class_name": "Sequential", "config": {"layers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    assert json_depth(deep) == 100_002 and json_depth(b'{"a": "[[[[", "b": [1]}') == 2
    model = keras_archive(tmp_path / "deep.keras", config_bytes=deep)
    refused(tmp_path, model, capsys, "config.json", "100,002 levels", str(MAX_JSON_DEPTH))
    h5 = legacy_h5(tmp_path / "deep.h5")
    with h5py.File(h5, "r+") as f:
        f.attrs["model_config"] = deep.decode()
    refused(tmp_path, h5, capsys, "model_config", "levels")
    text = tmp_path / "deep.json"
    text.write_bytes(deep)
    assert main(["summary", str(text)]) == 2


# ---------------------------------------------------------------- config fields


def _functional_with(change) -> dict:
    model = copy.deepcopy(config("functional"))
    change(model["config"])
    return model


def _layer(model: dict, name: str) -> dict:
    return next(l for l in model["config"]["layers"] if l["config"]["name"] == name)


SEQ = config()
NAN, INF = math.nan, math.inf
FIELDS = {
    "filters text": (with_layer_config(SEQ, "conv2d", filters="four"), ["'conv2d'", "'filters'", "'four'"]),
    "filters null": (with_layer_config(SEQ, "conv2d", filters=None), ["'filters'", "None"]),
    "filters NaN": (with_layer_config(SEQ, "conv2d", filters=NAN), ["'filters'", "nan"]),
    "filters 4.7": (with_layer_config(SEQ, "conv2d", filters=4.7), ["'filters'", "4.7"]),
    "kernel_size 2.5": (with_layer_config(SEQ, "conv2d", kernel_size=2.5), ["'kernel_size'", "2.5"]),
    "use_bias text": (with_layer_config(SEQ, "conv2d", use_bias="false"), ["'use_bias'", "'false'"]),
    "activation list": (with_layer_config(SEQ, "conv2d", activation=["relu"]), ["activation", "['relu']"]),
    "dropout without rate": (with_layer_config(SEQ, "dropout", rate=...), ["'dropout'", "'rate'"]),
    "reshape without target": (inserted(SEQ, 7, "Reshape", name="r"), ["'r'", "'target_shape'"]),
    "rescaling 0": (inserted(SEQ, 1, "Rescaling", name="s", scale=0), ["'s'", "'scale'", "0"]),
    "rescaling NaN": (inserted(SEQ, 1, "Rescaling", name="s", scale=NAN), ["'scale'", "nan"]),
    "rescaling inf": (inserted(SEQ, 1, "Rescaling", name="s", scale=INF), ["'scale'", "inf"]),
    "bn center text": (with_layer_config(SEQ, "batch_normalization", center="false"), ["center", "'false'"]),
    "padding null": (with_layer_config(SEQ, "conv2d", padding=None), ["padding", "None"]),
    "units text": (with_layer_config(SEQ, "dense", units="3"), ["'dense'", "units", "'3'"]),
    "config a string": (
        {
            **SEQ,
            "config": {
                **SEQ["config"],
                "layers": [*SEQ["config"]["layers"][:2], {"class_name": "Conv2D", "config": "x"}],
            },
        },
        ["config that is not a mapping", "'x'"],
    ),
    "inbound not a list": (
        _functional_with(lambda c: _layer({"config": c}, "conv_b").update(inbound_nodes="x")),
        ["'conv_b'", "inbound node"],
    ),
    "inbound reference short": (
        _functional_with(lambda c: _layer({"config": c}, "conv_b").update(inbound_nodes=[[["conv_a"]]])),
        ["'conv_b'", "inbound node"],
    ),
    "input_layers a number": (_functional_with(lambda c: c.update(input_layers=[[5, 0, 0]])), ["input", "[5, 0, 0]"]),
    "unknown output": (_functional_with(lambda c: c.update(output_layers=[["nope", 0, 0]])), ["output 'nope'"]),
    "input shape text": (
        with_layer_config(SEQ, "conv2d_input", batch_input_shape="x"),
        ["batch_input_shape", "'x'"],
    ),
}


@pytest.mark.parametrize("case", list(FIELDS))
def test_every_config_field_is_checked_by_type_and_range(tmp_path, capsys, case):
    model, words = FIELDS[case]
    arrays = weights("functional" if model["config"].get("input_layers") is not None else "sequential")
    path = keras_archive(tmp_path / "m.keras", model, arrays)
    refused(tmp_path, path, capsys, "m.keras", *words)
    assert main(["summary", str(path)]) == 2  # summary reads the same config through the same checks
    assert "Traceback" not in capsys.readouterr().err


def test_a_layer_named_training_is_renamed_not_a_crash(tmp_path):
    model = config("functional")
    for layer in model["config"]["layers"]:
        if layer["config"]["name"] == "conv_a":
            layer["config"]["name"] = "training"
        for node in layer.get("inbound_nodes") or []:
            for entry in node:
                entry[0] = "training" if entry[0] == "conv_a" else entry[0]
    arrays = weights("functional")
    arrays["training"] = arrays.pop("conv_a")
    expected = np.load(FIXTURES / "expected.npz")
    imported = import_keras(keras_archive(tmp_path / "t.keras", model, arrays), scale=(0, 255))
    np.testing.assert_allclose(imported.trained.predict_proba(expected["images"]), expected["functional"], atol=1e-5)
    assert "training_layer" in {l.name for l in imported.keras.spec.layers}


def test_lambda_layers_are_refused_and_run_no_code(tmp_path, capsys):
    marker = tmp_path / "ran"
    code = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('x')"
    model = inserted(SEQ, 1, "Lambda", name="evil", function={"class_name": "__lambda__", "config": {"code": code}})
    refused(tmp_path, keras_archive(tmp_path / "lambda.keras", model), capsys, "'evil' (Lambda)", "not supported")
    assert not marker.exists()
