"""Keras in and out (`convscope import`, `export --format keras`), checked against real Keras 3 on the torch backend.

Keras runs in its own processes (`tests/keras_side.py`): it builds and trains the fixture models,
saves them as .keras and .h5, records its own predictions and `evaluate` numbers, and loads our
exports back. tf.keras 2.x files come from tests/fixtures/tf_keras2 (written by tf.keras itself,
see make.py there), since this environment has no TensorFlow-backed Keras 2.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from convscope import evaluate
from convscope.data.dataset import Dataset
from convscope.data.scaling import MinMaxScaler
from convscope.errors import UserError
from convscope.export import export
from convscope.export.keras import keras_layer_order
from convscope.interop.keras_import import import_keras
from convscope.models import build, summary
from convscope.runs import load_run
from convscope.training.trained_model import TrainedModel

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
TF_KERAS2 = HERE / "fixtures" / "tf_keras2"
COURSE = {"mlp": 271_370, "cnn": 44_010, "cnn_wide": 662_410}
MODELS = [*COURSE, "small_sequential", "small_functional", "small_flat"]

needs_keras = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None,
    reason="Keras 3 is missing: pip install 'convscope[keras]' (make test does)",
)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "KERAS_BACKEND": "torch",
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }


def keras_side(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, str(HERE / "keras_side.py"), *args], capture_output=True, text=True, env=_env(), timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]


def convscope(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convscope", *args], capture_output=True, text=True, env=_env(), timeout=600
    )


@pytest.fixture(scope="module")
def keras_dir(tmp_path_factory) -> Path:
    if importlib.util.find_spec("keras") is None:
        pytest.skip("Keras 3 is missing: pip install 'convscope[keras]' (make test does)")
    out = tmp_path_factory.mktemp("keras")
    keras_side("build", str(out))
    return out


@pytest.fixture(scope="module")
def expected(keras_dir) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(keras_dir / "keras.npz") as npz:
        arrays = dict(npz)
    return arrays, json.loads((keras_dir / "keras.json").read_text())


# ------------------------------------------------------------------ import


@pytest.mark.slow
@needs_keras
@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", MODELS)
def test_import_predicts_what_keras_predicts(keras_dir, expected, name, fmt):
    arrays, facts = expected
    imported = import_keras(keras_dir / f"{name}.{fmt}", scale=(0, 255), double_scale=True)
    images = arrays[f"{name}_images"]
    if images.ndim == 2:  # flat pixel vectors: the run reads the square images they came from
        assert imported.trained.input_shape == (12, 12, 1)
        images = images.reshape(-1, 12, 12, 1)
    probabilities = imported.trained.predict_proba(images)
    np.testing.assert_allclose(probabilities, arrays[f"{name}_probabilities"], rtol=0, atol=1e-5)
    assert summary(imported.trained.model).total_params == facts[name]["params"]
    if name in COURSE:
        assert facts[name]["params"] == COURSE[name]
    if "BatchNormalization" in {l.type for l in imported.keras.spec.layers}:
        assert facts[name]["bn_moving_stats_moved"]  # the statistics that parity checks are not the initial ones


@pytest.mark.slow
@needs_keras
@pytest.mark.parametrize("name", ["small_functional", "cnn"])
def test_archives_without_layer_names_are_read_by_keras_weight_paths(keras_dir, expected, tmp_path, name):
    """Keras versions that do not store each layer's name in model.weights.h5: the class-name paths decide."""
    arrays, _ = expected
    source, copy = keras_dir / f"{name}.keras", tmp_path / f"{name}.keras"
    with zipfile.ZipFile(source) as archive:
        weights = tmp_path / "model.weights.h5"
        weights.write_bytes(archive.read("model.weights.h5"))
        with h5py.File(weights, "r+") as f:
            named = [g for g in f.values()] + [g["vars"] for g in f["layers"].values()]
            for group in named:
                group.attrs.pop("name", None)
            assert not any("name" in g["vars"].attrs for g in f["layers"].values())
        with zipfile.ZipFile(copy, "w") as out:
            for item in archive.namelist():
                out.writestr(item, weights.read_bytes() if item == "model.weights.h5" else archive.read(item))
    probabilities = import_keras(copy, scale=(0, 255), double_scale=True).trained.predict_proba(
        arrays[f"{name}_images"]
    )
    np.testing.assert_allclose(probabilities, arrays[f"{name}_probabilities"], rtol=0, atol=1e-5)


@pytest.mark.slow
@needs_keras
def test_the_fixture_models_use_every_supported_layer_and_same_padding_at_stride_2(keras_dir):
    classes = set()
    for name in ("small_sequential", "small_functional"):
        config = json.loads(zipfile.ZipFile(keras_dir / f"{name}.keras").read("config.json"))
        classes |= {l["class_name"] for l in config["config"]["layers"]}
        same_stride_2 = [
            l
            for l in config["config"]["layers"]
            if l["class_name"] == "Conv2D" and l["config"]["padding"] == "same" and l["config"]["strides"] == [2, 2]
        ]
        assert same_stride_2, name
    assert {
        "Conv2D",
        "MaxPooling2D",
        "AveragePooling2D",
        "GlobalAveragePooling2D",
        "Dense",
        "Flatten",
        "BatchNormalization",
        "Dropout",
        "Activation",
        "Add",
        "Concatenate",
        "Rescaling",
        "Reshape",
        "InputLayer",
    } <= classes


@pytest.mark.parametrize("name", ["sequential", "functional"])
def test_import_of_tf_keras2_h5_matches_tf_keras(name):
    reference = np.load(TF_KERAS2 / "expected.npz")
    imported = import_keras(TF_KERAS2 / f"{name}.h5", scale=(0, 255))
    assert imported.keras.keras_version.startswith("2.")
    np.testing.assert_allclose(imported.trained.predict_proba(reference["images"]), reference[name], rtol=0, atol=1e-5)


@pytest.mark.slow
@needs_keras
def test_import_with_data_is_a_run_whose_metrics_are_keras_evaluate(keras_dir, expected, tmp_path):
    arrays, facts = expected
    images, labels = arrays["small_functional_images"], arrays["small_functional_labels"]
    np.savez(tmp_path / "data.npz", x=images, y=labels)
    run = tmp_path / "imported"
    result = convscope(
        "import",
        str(keras_dir / "small_functional.keras"),
        "--out",
        str(run),
        "--data",
        str(tmp_path / "data.npz"),
        "--scale",
        "0,255",
        "--double-scale",  # the fixture was trained on pixels / 255, then its Rescaling layer maps them to -1..1
        "--class-names",
        "abc",
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert round(metrics["test_accuracy"] * len(labels)) == round(facts["small_functional"]["accuracy"] * len(labels))
    assert metrics["test_loss"] == pytest.approx(facts["small_functional"]["loss"], abs=1e-4)
    assert metrics["test_size"] == len(labels) and metrics["epochs_run"] == 0
    for name in ("test_images.npy", "test_set.npz", "architecture.json", "model.safetensors", "report.html"):
        assert (run / name).is_file(), name
    page = (run / "report.html").read_text()
    assert "Imported from" in page and "no training curves" in page and "the whole file" in page
    # the run is an ordinary one from here on
    again = convscope("evaluate", str(run), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["test_accuracy"] == metrics["test_accuracy"]
    assert load_run(run).class_names == ("a", "b", "c")


@pytest.mark.slow
@needs_keras
def test_import_data_of_the_sequential_h5_matches_keras_evaluate(keras_dir, expected, tmp_path):
    arrays, facts = expected
    images, labels = arrays["cnn_images"], arrays["cnn_labels"]
    np.savez(tmp_path / "data.npz", x=images, y=labels)
    result = import_keras(
        keras_dir / "cnn.h5", tmp_path / "run", data=str(tmp_path / "data.npz"), scale=(0, 255), report=False
    )
    assert result.evaluation.loss == pytest.approx(facts["cnn"]["loss"], abs=1e-4)
    assert round(result.evaluation.accuracy * len(labels)) == round(facts["cnn"]["accuracy"] * len(labels))


@pytest.mark.slow
@needs_keras
def test_summary_reads_keras_files_without_importing(keras_dir):
    for name in ("cnn_wide.keras", "cnn_wide.h5", "cnn_wide.json"):
        result = convscope("summary", str(keras_dir / name))
        assert result.returncode == 0, result.stderr
        assert "Total params: 662,410" in result.stdout
        assert (
            "size: ceil(28 / 1) = 28" in result.stdout and "size: floor((28 - 2 + 2*0) / 2) + 1 = 14" in result.stdout
        )
    small = convscope("summary", str(keras_dir / "small_functional.h5")).stdout
    assert "size: unchanged; every value becomes x * 2 + -1" in small  # Rescaling
    assert "size: 3 * 3 * 8 = 72 values -> (72,)" in small  # Reshape
    assert "size: channels 4 + 4 = 8" in small  # Concatenate
    assert "size: the mean of each channel's 6x6 map -> (8,)" in small  # GlobalAveragePooling2D
    assert "Total params: 871" in small


@pytest.mark.slow
def test_summary_reads_tf_keras2_json():
    result = convscope("summary", str(TF_KERAS2 / "functional.json"))
    assert result.returncode == 0, result.stderr
    assert "skip (Add) <- conv_a, relu_b" in result.stdout
    assert "size: ceil(12 / 2) = 6  (same: pad 0+1" in result.stdout  # Keras' asymmetric 'same'


# ------------------------------------------------------------------ refusals


@pytest.mark.slow
@needs_keras
@pytest.mark.parametrize(
    "name, words",
    [
        ("unsupported", ["layer 'sep' (SeparableConv2D)", "is not supported", "Conv2D, MaxPooling2D"]),
        ("custom", ["layer 'doubler' (Doubler)", "custom object", "Conv2D, MaxPooling2D"]),
        ("two_inputs", ["2 inputs", "left, right", "one image input"]),
        ("two_outputs", ["2 outputs", "first, second"]),
    ],
)
def test_models_outside_the_vocabulary_are_refused_by_name(keras_dir, tmp_path, name, words):
    result = convscope("import", str(keras_dir / f"{name}.keras"), "--out", str(tmp_path / "run"), "--scale", "none")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
    for word in words:
        assert word in result.stderr


@pytest.mark.slow
def test_files_that_are_not_keras_models_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    empty_zip = tmp_path / "model.keras"
    with zipfile.ZipFile(empty_zip, "w") as z:
        z.writestr("readme.md", "no model here")
    weights_only = tmp_path / "weights.h5"
    with h5py.File(weights_only, "w") as f:
        f.attrs["layer_names"] = ["dense"]
    cases = {text: "is not a Keras model", empty_zip: "has no config.json", weights_only: "weights only"}
    for path, words in cases.items():
        result = convscope("import", str(path), "--out", str(tmp_path / "run"), "--scale", "none")
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, result.stderr
    summary_of_text = convscope("summary", str(weights_only))
    assert summary_of_text.returncode == 2 and "weights only" in summary_of_text.stderr


@pytest.mark.slow
def test_import_asks_how_inputs_were_scaled_and_checks_class_names(tmp_path):
    result = convscope("import", str(TF_KERAS2 / "sequential.h5"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "--scale MIN,MAX" in result.stderr and "--scale none" in result.stderr
    with pytest.raises(UserError, match="gives 4 names but the model outputs 3 classes"):
        import_keras(TF_KERAS2 / "sequential.h5", scale=(0, 255), class_names="abcd")
    with pytest.raises(UserError, match="MAX > MIN"):
        import_keras(TF_KERAS2 / "sequential.h5", scale=(1, 1))


# ------------------------------------------------------------------ export


def _random_bn(network: torch.nn.Module) -> None:
    """Moving statistics and affine terms away from 0 and 1, so a swapped variable would show."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in network.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(n, generator=generator) - 0.5)


# Two conv branches of equal depth listed against the order Keras gives them, numeric padding,
# a linear output (convscope's softmax must become a Keras layer), Rescaling and Reshape.
BRANCHES = {
    "name": "branches",
    "layers": [
        {"name": "c1", "type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": 1, "inputs": "input"},
        {
            "name": "wide",
            "type": "Conv2D",
            "filters": 3,
            "kernel_size": 3,
            "padding": "same",
            "strides": 1,
            "activation": "relu",
            "inputs": "c1",
        },
        {"name": "narrow", "type": "Conv2D", "filters": 3, "kernel_size": 1, "use_bias": False, "inputs": "c1"},
        {"name": "sum", "type": "Add", "inputs": ["narrow", "wide"]},
        {"name": "bn", "type": "BatchNormalization", "momentum": 0.9, "epsilon": 0.01, "inputs": "sum"},
        {"name": "halve", "type": "Rescaling", "scale": 0.5, "inputs": "bn"},
        {"name": "pool", "type": "MaxPool2D", "padding": "same", "inputs": "halve"},
        {"name": "flat", "type": "Reshape", "target_shape": [-1], "inputs": "pool"},
        {"name": "out", "type": "Dense", "units": "num_classes", "inputs": "flat"},
    ],
    "output": "out",
}


@pytest.fixture(scope="module")
def exports(keras_dir, trained_run, tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Exports of imported runs, of a trained run and of a spec network, with convscope's own probabilities."""
    out = tmp_path_factory.mktemp("exports")
    arrays = np.load(keras_dir / "keras.npz")
    ours: dict[str, np.ndarray] = {}
    for name, fmt in (("small_sequential", "h5"), ("small_functional", "keras"), ("cnn_wide", "keras")):
        trained = import_keras(keras_dir / f"{name}.{fmt}", scale=(0, 255), double_scale=True).trained
        export(trained, out / f"{name}.keras", "keras")
        np.save(out / f"{name}.npy", arrays[f"{name}_images"])
        ours[name] = trained.predict_proba(arrays[f"{name}_images"])
    trained = load_run(trained_run)
    images = np.random.default_rng(1).integers(0, 256, (32, *trained.input_shape)).astype(np.uint8)
    np.save(out / "trained.npy", images)
    assert (
        convscope("export", str(trained_run), "--format", "keras", "--out", str(out / "trained.keras")).returncode == 0
    )
    ours["trained"] = trained.predict_proba(images)
    network = build(BRANCHES, (10, 10, 2), 4, seed=3)
    _random_bn(network)
    spec_model = TrainedModel(network.eval(), MinMaxScaler(-20.0, 300.0), tuple("wxyz"), (10, 10, 2))
    images = np.random.default_rng(2).uniform(-20, 300, (16, 10, 10, 2)).astype(np.float32)
    np.save(out / "branches.npy", images)
    export(spec_model, out / "branches.keras", "keras")
    ours["branches"] = spec_model.predict_proba(images)
    keras_side("predict", str(out), *(str(out / f"{name}.keras") for name in ours))
    return out, {name: (ours[name], theirs) for name, theirs in np.load(out / "predictions.npz").items()}


@pytest.mark.slow
@needs_keras
@pytest.mark.parametrize("name", ["small_sequential", "small_functional", "cnn_wide", "trained", "branches"])
def test_keras_loads_the_export_and_predicts_the_same_from_raw_pixels(exports, name):
    ours, theirs = exports[1][name]
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-5)


@pytest.mark.slow
@needs_keras
def test_the_export_puts_the_scaling_in_front_and_keeps_the_layer_names(exports):
    config = json.loads(zipfile.ZipFile(exports[0] / "small_functional.keras").read("config.json"))
    layers = config["config"]["layers"]
    assert [l["class_name"] for l in layers[:2]] == ["InputLayer", "Rescaling"]
    assert layers[1]["config"]["scale"] == pytest.approx(1 / 255) and layers[1]["config"]["offset"] == 0
    assert {"stem", "branch", "skip", "both", "probabilities"} <= {l["name"] for l in layers}


def test_keras_layer_order_is_by_depth_then_first_visit():
    graph = {"image": [], "c1": ["image"], "wide": ["c1"], "narrow": ["c1"], "sum": ["narrow", "wide"], "out": ["sum"]}
    assert keras_layer_order(graph, "out") == ["image", "c1", "narrow", "wide", "sum", "out"]


@pytest.mark.slow
def test_export_prints_the_contract_and_refuses_what_keras_cannot_do(trained_run, tmp_path):
    result = convscope("export", str(trained_run), "--format", "keras", "--out", str(tmp_path / "m.keras"))
    assert result.returncode == 0, result.stderr
    assert "Rescaling: x = (pixels - 0) / (255 - 0)" in result.stdout and '"class_names"' in result.stdout
    spec = {
        "layers": [{"type": "MaxPool2D", "padding": 1}, {"type": "Flatten"}, {"type": "Dense", "units": "num_classes"}]
    }
    padded = TrainedModel(build(spec, (8, 8, 1), 2).eval(), MinMaxScaler(0, 1), ("a", "b"), (8, 8, 1))
    with pytest.raises(UserError, match=r"layer 'max_pool2d' \(MaxPool2D\) pads by 1 pixels"):
        export(padded, tmp_path / "padded.keras", "keras")
    with pytest.raises(UserError, match="ends in .keras"):
        export(padded, tmp_path / "model.h5", "keras")


@pytest.mark.slow
def test_import_and_export_need_neither_keras_nor_tensorflow(tmp_path):
    probe = (
        "import sys\n"
        "from convscope.interop.keras_import import import_keras\n"
        "from convscope.export import export\n"
        f"t = import_keras({str(TF_KERAS2 / 'functional.h5')!r}, scale=(0, 255)).trained\n"
        f"export(t, {str(tmp_path / 'out.keras')!r}, 'keras')\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'tf_keras') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_an_imported_run_keeps_its_data_metrics_through_evaluate(tmp_path):
    reference = np.load(TF_KERAS2 / "expected.npz")
    labels = reference["sequential"].argmax(axis=1)  # tf.keras' own predictions as labels: accuracy 1
    np.savez(tmp_path / "data.npz", x=reference["images"], y=labels)
    result = import_keras(
        TF_KERAS2 / "sequential.h5", tmp_path / "run", data=str(tmp_path / "data.npz"), scale=(0, 255), report=False
    )
    assert result.evaluation.accuracy == 1.0
    picked = reference["sequential"][np.arange(len(labels)), labels]
    assert result.evaluation.loss == pytest.approx(float(-np.log(picked).mean()), abs=1e-5)
    again = evaluate(load_run(tmp_path / "run"), Dataset(reference["images"], labels, ("0", "1", "2")))
    assert again.loss == pytest.approx(result.evaluation.loss, abs=1e-7)


def test_layer_names_that_are_torch_methods_are_refused_in_specs_and_renamed_on_import():
    from convscope.interop.keras_config import parse_keras_config
    from convscope.models import parse_spec

    with pytest.raises(UserError, match="cannot be called 'half', the name of a torch method"):
        parse_spec({"layers": [{"name": "half", "type": "Flatten"}]})
    config = json.loads((TF_KERAS2 / "sequential.json").read_text())
    config["config"]["layers"][-1]["config"]["name"] = "float"
    model = parse_keras_config(config, "sequential.json")
    assert model.spec.layers[-1].name == "float_layer" and model.layers[-1].name == "float"
