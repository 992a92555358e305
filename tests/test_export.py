"""ONNX and TorchScript export: the exported file gives convscope's probabilities on real MNIST digits."""

from __future__ import annotations

import json
import os
import stat
import warnings

import numpy as np
import pytest
import torch

import convscope as cs
from convscope.cli import main

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from convscope.export import contract, export, onnx_probabilities  # noqa: E402


@pytest.fixture(scope="module")
def real_digits(trained_run):
    data, _ = cs.load_test_set(trained_run)
    return data.images[:300]  # real MNIST test digits, uint8 (N, 28, 28, 1)


@pytest.fixture(scope="module")
def onnx_file(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    assert main(["export", str(trained_run), "--format", "onnx", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_onnxruntime_matches_convscope_on_real_images(onnx_file, trained_run, real_digits):
    expected = cs.load_run(trained_run).predict_proba(real_digits)
    got = onnx_probabilities(onnx_file, real_digits)
    assert got.shape == expected.shape == (300, 10)
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    # any batch size, including one image
    assert np.abs(onnx_probabilities(onnx_file, real_digits[:1]) - expected[:1]).max() < 1e-4


@pytest.mark.slow
def test_onnx_file_carries_the_preprocessing_contract(onnx_file, trained_run):
    model = onnx.load(str(onnx_file))
    onnx.checker.check_model(model)
    terms = json.loads({p.key: p.value for p in model.metadata_props}["convscope"])
    assert terms == json.loads(json.dumps(contract(cs.load_run(trained_run))))
    assert terms["input"]["shape"] == ["batch", 28, 28, 1] and terms["input"]["layout"].startswith("NHWC")
    assert terms["scaler"] == {"minimum": 0.0, "maximum": 255.0}
    assert terms["input"]["background"] == "dark"
    assert terms["input_contract"]["framing"] == "fit" and "'fit'" in terms["input"]["framing"]
    assert terms["class_names"] == [str(d) for d in range(10)]
    assert [i.name for i in model.graph.input] == ["image"] and [o.name for o in model.graph.output] == [
        "probabilities"
    ]


@pytest.mark.slow
def test_torchscript_matches_convscope(trained_run, real_digits, tmp_path):
    trained = cs.load_run(trained_run)
    path = export(trained, tmp_path / "model.pt", "torchscript")
    extra = {"convscope.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated; it still loads
        loaded = torch.jit.load(str(path), _extra_files=extra)
    with torch.no_grad():
        got = loaded(
            torch.tensor(real_digits, dtype=torch.float32)
        ).numpy()  # a copy: the test images are memory-mapped
    assert np.abs(got - trained.predict_proba(real_digits)).max() < 1e-4
    assert json.loads(extra["convscope.json"])["class_names"] == list(trained.class_names)


@pytest.mark.slow
def test_export_errors_are_sentences(trained_run, tmp_path, capsys):
    assert main(["export", str(tmp_path), "--format", "onnx"]) == 2
    assert "not a convscope run directory" in capsys.readouterr().err
    assert main(["export", str(trained_run), "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    with pytest.raises(cs.UserError, match="unknown export format"):
        export(cs.load_run(trained_run), tmp_path / "m.bin", "tflite")
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


@pytest.mark.slow
def test_the_contract_names_polarity_and_framing_and_an_old_bare_run_has_neither(trained_run, tmp_path):
    described = contract(cs.load_run(trained_run))
    assert described["input"]["background"] == "dark"  # MNIST: light ink on black
    assert described["input"]["polarity"] == "light ink on a dark background"
    assert described["input"]["framing"].startswith("'fit': crop to the ink's bounding box")
    assert described["input_contract"]["framing"] == "fit" and described["input_contract"]["centre"] == "mass"
    partial = tmp_path / "run"
    partial.mkdir()
    for name in ("config.json", "model.safetensors", "history.csv", "metrics.json", "test_set.npz"):
        (partial / name).write_bytes((trained_run / name).read_bytes())  # test_images.npy left out
    arch = json.loads((trained_run / "architecture.json").read_text())
    del arch["input_contract"]  # as runs saved before contracts existed
    (partial / "architecture.json").write_text(json.dumps(arch))
    described = contract(cs.load_run(partial))["input"]
    assert described["background"] is None and "never invert" in described["invert"]
    assert described["framing"].startswith("'none'")


@pytest.mark.slow
def test_exported_files_follow_the_umask_like_every_run_file(onnx_file, trained_run, tmp_path):
    umask = os.umask(0o027)  # group may read, others nothing: neither mkstemp's 0600 nor the usual 0644
    try:
        path = export(cs.load_run(trained_run), tmp_path / "model.pt", "torchscript")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(onnx_file.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((trained_run / "model.safetensors").stat().st_mode) == 0o666 & ~umask


@pytest.mark.slow
def test_the_onnx_input_is_float32_as_the_contract_says(onnx_file, trained_run, real_digits):
    import onnxruntime

    terms = contract(cs.load_run(trained_run))["input"]
    assert terms["dtype"] == "float32" and "float32" in terms["values"]
    (graph_input,) = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).get_inputs()
    assert graph_input.type == "tensor(float)"
    # uint8 pixels cast as the contract says give the same answer as convscope on the uint8 images
    got = onnx_probabilities(onnx_file, np.asarray(real_digits[:5]).astype(np.float32))
    assert np.abs(got - cs.load_run(trained_run).predict_proba(real_digits[:5])).max() < 1e-4
