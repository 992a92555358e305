"""Models: Keras parameter counts, output-size formulas, Keras 'same' padding, spec validation."""

from __future__ import annotations

import json

import pytest
import torch

import convscope as cs
from convscope.errors import UserError
from convscope.models import build, summary
from convscope.models.sizes import axis_output, receptive_field


@pytest.mark.parametrize(
    "preset, total, trainable, non_trainable",
    [("mlp", 271_370, 270_346, 1_024), ("cnn", 44_010, 43_882, 128), ("cnn-wide", 662_410, 662_410, 0)],
)
def test_preset_parameter_counts_match_keras(preset, total, trainable, non_trainable):
    s = summary(build(preset, (28, 28, 1), 10))
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (total, trainable, non_trainable)
    # the counts come from the real torch modules, not from a formula
    net = build(preset, (28, 28, 1), 10)
    assert sum(p.numel() for p in net.parameters()) == trainable


@pytest.mark.parametrize(
    "size, kernel, stride, padding, out, before, after",
    [
        (32, 5, 1, "valid", 28, 0, 0),  # the classic 5x5 on 32x32
        (28, 3, 1, "same", 28, 1, 1),  # odd kernel: symmetric
        (28, 2, 1, "same", 28, 0, 1),  # even kernel: the extra pixel goes after
        (6, 3, 2, "same", 3, 0, 1),  # stride 2, odd total padding
        (5, 3, 2, "same", 3, 1, 1),  # stride 2, even total padding
        (7, 3, 2, "valid", 3, 0, 0),
        (32, 5, 1, 2, 32, 2, 2),  # explicit integer padding
        (28, 2, 2, "valid", 14, 0, 0),
    ],
)
def test_axis_output_sizes(size, kernel, stride, padding, out, before, after):
    axis = axis_output(size, kernel, stride, padding)
    assert (axis.size_out, axis.pad_before, axis.pad_after) == (out, before, after)


def test_formula_text_shows_the_numbers():
    assert axis_output(32, 5, 1, "valid").formula == "floor((32 - 5 + 2*0) / 1) + 1 = 28"
    assert axis_output(6, 3, 2, "same").formula.startswith("ceil(6 / 2) = 3")
    assert "pad 0+1" in axis_output(6, 3, 2, "same").formula


def test_summary_shows_formula_flops_and_receptive_field():
    s = summary(
        build(
            {
                "layers": [
                    {"Conv2D": {"filters": 6, "kernel_size": 5}},
                    {"MaxPool2D": {}},
                    {"Flatten": {}},
                    {"Dense": {"units": "num_classes", "activation": "softmax"}},
                ]
            },
            (32, 32, 1),
            10,
        )
    )
    text = str(s)
    assert "floor((32 - 5 + 2*0) / 1) + 1 = 28" in text
    assert "floor((28 - 2 + 2*0) / 2) + 1 = 14" in text
    conv = s.layers[0]
    assert conv.output_shape == (28, 28, 6)
    assert conv.flops == 2 * 5 * 5 * 1 * 6 * 28 * 28
    assert conv.receptive_field == (5, 5)
    assert s.layers[1].receptive_field == (6, 6)
    assert receptive_field(5, 1, 2, 2) == (6, 2)


def test_same_padding_is_asymmetric_like_keras_for_every_stride():
    """6x6 ones, 3x3 ones kernel, stride 2, 'same': Keras pads 0 before and 1 after."""
    net = build(
        {
            "layers": [
                {"Conv2D": {"filters": 1, "kernel_size": 3, "strides": 2, "padding": "same", "use_bias": False}},
                {"Flatten": {}},
                {"Dense": {"units": "num_classes"}},
            ]
        },
        (6, 6, 1),
        2,
    )
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    torch.nn.init.ones_(conv.weight)
    out = net.activations(torch.ones(1, 1, 6, 6))["conv2d"][0, 0]
    assert out.shape == (3, 3)
    assert out[0, 0].item() == 9  # top-left window lies entirely inside: no padding before
    assert out[2, 2].item() == 4  # bottom-right window overhangs by one row and one column


def test_same_max_and_average_pooling_ignore_padding():
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    # 5 -> 3 with pads 0 before, 1 after: the last window holds only pixel 24, averaged over itself alone
    for kind, first, last in (("MaxPool2D", 6.0, 24.0), ("AveragePooling2D", (0 + 1 + 5 + 6) / 4, 24.0)):
        net = build(
            {
                "layers": [
                    {kind: {"pool_size": 2, "strides": 2, "padding": "same"}},
                    {"Flatten": {}},
                    {"Dense": {"units": "num_classes"}},
                ]
            },
            (5, 5, 1),
            2,
        )
        name = net.graph[0][0]
        out = net.activations(x)[name][0, 0]
        assert out.shape == (3, 3)
        assert out[0, 0].item() == pytest.approx(first)
        assert out[2, 2].item() == pytest.approx(last)
        assert out[1, 2].item() == pytest.approx(19.0 if kind == "MaxPool2D" else (14 + 19) / 2)


def test_functional_spec_with_add_and_concatenate(tmp_path):
    spec = {
        "name": "residual",
        "layers": [
            {"name": "a", "type": "Conv2D", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"name": "b", "type": "Conv2D", "filters": 8, "kernel_size": 3, "padding": "same", "inputs": "a"},
            {"name": "sum", "type": "Add", "inputs": ["a", "b"]},
            {"name": "both", "type": "Concatenate", "inputs": ["sum", "a"]},
            {"name": "gap", "type": "GlobalAveragePooling2D", "inputs": "both"},
            {"name": "out", "type": "Dense", "units": "num_classes", "activation": "softmax", "inputs": "gap"},
        ],
        "output": "out",
    }
    path = tmp_path / "residual.json"
    path.write_text(json.dumps(spec))
    net = build(str(path), (12, 12, 1), 4)
    assert net.info[3].output_shape == (12, 12, 16)
    assert net(torch.zeros(2, 1, 12, 12)).shape == (2, 4)


def test_yaml_sequential_spec_with_aliases(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(
        "name: small\nlayers:\n"
        "  - Input: {shape: [28, 28, 1]}\n"
        "  - Conv2D: {filters: 4, kernel_size: 5, strides: 2, padding: same, activation: relu}\n"
        "  - MaxPooling2D: {pool_size: 2}\n"
        "  - Dropout: {rate: 0.1}\n"
        "  - Flatten: {}\n"
        "  - Dense: {units: num_classes, activation: softmax}\n"
    )
    net = build(path, (28, 28, 1), 10)
    assert [i.output_shape for i in net.info][:2] == [(14, 14, 4), (7, 7, 4)]


@pytest.mark.parametrize(
    "layers, input_shape, message",
    [
        (
            [{"Conv2D": {"filters": 4, "kernel_size": 5}}] * 3 + [{"Flatten": {}}, {"Dense": {"units": 10}}],
            (8, 8, 1),
            "layer 'conv2d_1' (Conv2D): output height would be 0, below 1: floor((4 - 5 + 2*0) / 1) + 1 = 0",
        ),
        (
            [{"Conv2D": {"filters": 4, "kernel_size": 3}}, {"Dense": {"units": 10}}],
            (8, 8, 1),
            "layer 'dense' (Dense): needs a flat input, got (6, 6, 4)",
        ),
        ([{"Conv3D": {"filters": 4}}], (8, 8, 1), "unknown type 'Conv3D'"),
        ([{"Conv2D": {"filters": 4, "kernel_size": 3, "dilation": 2}}], (8, 8, 1), "unknown argument(s) dilation"),
        ([{"Flatten": {}}, {"Dense": {"units": 7}}], (8, 8, 1), "gives shape (7,), but the data has 10 classes"),
        (
            [{"Input": {"shape": [28, 28, 3]}}, {"Flatten": {}}, {"Dense": {"units": 10}}],
            (28, 28, 1),
            "declares Input shape (28, 28, 3) but the data is (28, 28, 1)",
        ),
        ([{"Conv2D": {"filters": 0, "kernel_size": 3}}], (8, 8, 1), "'filters' must be a positive integer, got 0"),
        ([{"Dense": {"units": 10, "activation": "relux"}}], (8,), "unknown activation 'relux'"),
    ],
)
def test_invalid_specs_fail_before_training_with_layer_and_numbers(layers, input_shape, message):
    with pytest.raises(UserError) as err:
        build({"layers": layers}, input_shape, 10)
    assert message in str(err.value)


def test_add_with_mismatched_shapes_names_the_layer():
    spec = {
        "layers": [
            {"name": "a", "type": "Conv2D", "filters": 4, "kernel_size": 3},
            {"name": "b", "type": "Conv2D", "filters": 8, "kernel_size": 3, "inputs": "input"},
            {"name": "s", "type": "Add", "inputs": ["a", "b"]},
        ]
    }
    with pytest.raises(UserError, match=r"layer 's' \(Add\): needs two or more inputs of the same shape"):
        build(spec, (8, 8, 1), 10)


def test_undefined_input_and_bad_spec_files(tmp_path):
    with pytest.raises(UserError, match="takes input 'nowhere', which is not defined"):
        build({"layers": [{"type": "Flatten", "inputs": "nowhere"}]}, (8, 8, 1), 10)
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [\n  - Conv2D: {")
    with pytest.raises(UserError, match=r"bad.yaml is not valid YAML"):
        build(bad, (8, 8, 1), 10)
    with pytest.raises(UserError, match="cannot read model spec"):
        build(tmp_path / "missing.json", (8, 8, 1), 10)


def test_keras_defaults_for_batchnorm_and_init():
    net = build("mlp", (28, 28, 1), 10)
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d))
    assert bn.momentum == pytest.approx(0.01) and bn.eps == pytest.approx(1e-3)
    dense = next(m for m in net.modules() if isinstance(m, torch.nn.Linear))
    assert torch.count_nonzero(dense.bias) == 0
    limit = (6 / (784 + 256)) ** 0.5  # Glorot uniform bound
    assert dense.weight.abs().max() <= limit
    assert dense.weight.abs().max() > 0.9 * limit


def test_softmax_output_becomes_logits_and_probabilities_sum_to_one():
    net = build("cnn", (28, 28, 1), 10, seed=1)
    x = torch.rand(3, 1, 28, 28)
    probs = net.probabilities(x)
    assert torch.allclose(probs.sum(1), torch.ones(3))
    assert not torch.allclose(net(x).sum(1), torch.ones(3))


def test_seeded_build_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build("cnn", (28, 28, 1), 10, seed=7)
    after = torch.rand(1)
    b = build("cnn", (28, 28, 1), 10, seed=7)
    assert before == after
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_summary_of_a_plain_torch_module():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 5), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 28 * 28, 10)
    )
    s = cs.summary(model, input_shape=(32, 32, 1), print_fn=None)
    assert s.layers[0].output_shape == (28, 28, 4)
    assert s.layers[0].formula == "floor((32 - 5 + 2*0) / 1) + 1 = 28"
    assert s.total_params == 4 * 25 + 4 + 4 * 28 * 28 * 10 + 10


def test_a_bare_softmax_activation_as_output_layer_builds_and_gives_logits():
    # The output layer may be a bare Softmax module rather than a Sequential ending in one: the check that drops
    # the final softmax (the loss applies its own) must recognise both forms.
    net = build(
        {
            "layers": [
                {"Flatten": {}},
                {"Dense": {"units": 3}},
                {"Activation": {"activation": "softmax"}},
            ]
        },
        (4, 4, 1),
        3,
        seed=0,
    )
    x = torch.rand(5, 4, 4, 1)
    logits = net(x)
    assert logits.shape == (5, 3)
    assert not torch.allclose(logits.sum(dim=1), torch.ones(5))  # logits, not probabilities: the loss softmaxes
