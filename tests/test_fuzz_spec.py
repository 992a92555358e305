"""Fuzzing the model-spec parser and builder: random YAML/JSON trees, random values in every
argument, and specs the size of a bomb end in a built model or one `UserError` sentence."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from convscope.errors import UserError
from convscope.models.build import build
from convscope.models.summary import plan
from fuzzing import assert_one_sentence, scaled, valid_or_user_error

LAYER_TYPES = [
    "Conv2D",
    "MaxPool2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "Dense",
    "Flatten",
    "BatchNormalization",
    "Dropout",
    "Activation",
    "Add",
    "Concatenate",
    "Input",
    "Conv3D",
    "conv2d",
]
ARGUMENTS = [
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "activation",
    "use_bias",
    "units",
    "pool_size",
    "momentum",
    "epsilon",
    "rate",
    "axis",
    "name",
    "inputs",
    "shape",
    "dilation",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 40),
    st.integers(),
    st.sampled_from([10**9, 2**31, 2**63, 10**30]),
    st.floats(),
    st.sampled_from(["same", "valid", "relu", "softmax", "num_classes", "input", "a", "", "x" * 500]),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=3)
    ),
    max_leaves=12,
)
arguments = st.dictionaries(st.sampled_from(ARGUMENTS), st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=5)
layers = st.one_of(
    st.builds(lambda kind, args: {kind: args}, st.sampled_from(LAYER_TYPES), st.one_of(arguments, values)),
    st.builds(lambda kind, args: {"type": kind, **args}, st.sampled_from(LAYER_TYPES), arguments),
    values,
)
specs = st.one_of(
    st.lists(layers, max_size=6),
    st.fixed_dictionaries(
        {"layers": st.lists(layers, max_size=6)},
        optional={"name": values, "output": values, "input_shape": values, 7: values},
    ),
    values,
)
shapes = st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 4))


@given(spec=specs, shape=shapes, classes=st.integers(1, 12))
@example([{"Conv2D": 5}], (8, 8, 1), 2)
@example([{"Dense": {"units": 4, "activation": ["relu"]}}], (4,), 4)
@example([{"BatchNormalization": {"momentum": "fast"}}, {"Flatten": {}}, {"Dense": {"units": 2}}], (4, 4, 1), 2)
@example(
    [{"Conv2D": {"filters": 1_000_000_000, "kernel_size": 3}}, {"Flatten": {}}, {"Dense": {"units": 2}}], (8, 8, 1), 2
)
@example({"name": "../../etc", "layers": [{"Flatten": {}}, {"Dense": {"units": 2}}]}, (4, 4, 1), 2)
def test_spec_values_build_or_fail_with_one_sentence(spec, shape, classes):
    valid_or_user_error(build, spec, shape, classes)


@scaled(0.2)
@given(spec=specs, shape=st.tuples(st.integers(1, 10**6), st.integers(1, 10**6), st.integers(1, 10**6)))
def test_summary_plans_any_size_without_allocating(spec, shape):
    started = time.monotonic()
    valid_or_user_error(plan, spec, shape, 10)
    assert time.monotonic() - started < 20


@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=200)), suffix=st.sampled_from([".yaml", ".json"]))
@example(b"layers: [\xff\xfe]", ".yaml")
@example("[" * 100_000, ".json")
@example("[" * 100_000, ".yaml")
def test_spec_files_of_random_text(text, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"spec{suffix}"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        valid_or_user_error(build, path, (8, 8, 1), 2)


@given(spec=specs)
def test_spec_trees_round_trip_through_yaml_and_json(spec):
    with tempfile.TemporaryDirectory() as tmp:
        for suffix, dump in ((".yaml", yaml.safe_dump), (".json", json.dumps)):
            path = Path(tmp) / f"s{suffix}"
            try:
                path.write_text(dump(spec))
            except (TypeError, ValueError, yaml.YAMLError):
                continue  # not expressible in this format
            valid_or_user_error(build, path, (8, 8, 1), 3)


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        lines.append(f"{chr(97 + level)}: &{chr(97 + level)} [{', '.join(['*' + chr(96 + level)] * 10)}]")
    lines.append("layers: *i")  # 10**9 strings once expanded
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(UserError) as error:
        build(path, (8, 8, 1), 2)
    assert time.monotonic() - started < 5
    assert assert_one_sentence(error.value) == (
        f"{path}: the spec holds more than 10,000 values (YAML aliases expanded); "
        "raise CONVSCOPE_MAX_SPEC_VALUES if it really is that large."
    )


def test_error_messages_quote_at_most_a_short_piece_of_a_value():
    with pytest.raises(UserError) as error:
        build([{"Dense": {"units": 2, "activation": "x" * 100_000}}], (4,), 2)
    assert len(assert_one_sentence(error.value)) < 300


def test_summary_of_a_huge_input_is_arithmetic():
    started = time.monotonic()
    result = plan("cnn", (100_000, 100_000, 1), 10)
    assert time.monotonic() - started < 20
    assert result.layers[-1].output_shape == (10,) and result.total_params > 10**11
    with pytest.raises(UserError, match=r"has [\d,]+ parameters .* over the limit of 268,435,456"):
        build("cnn", (100_000, 100_000, 1), 10)
