"""The fused layers give eager torch's results bit for bit, forward and backward, in fp32 and bf16 (BatchNorm's,
bf16 only, within bf16's resolution), and step aside when they cannot run (another layout, no C compiler, tracing
for export)."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import convscope as cs
from convscope.models import fused, native

needs_kernels = pytest.mark.skipif(native.library() is None, reason="no C compiler here: the eager path runs")


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _hard_input(shape, dtype) -> torch.Tensor:
    """Random values with what breaks a careless pool: ties, zeros, all-negative windows, a NaN."""
    torch.manual_seed(3)
    x = torch.randn(shape)
    x[0, 0, :4, :4] = 0.5  # a positive tie in every window
    x[0, 1, :4, :4] = 0.0  # a zero tie, cut by ReLU
    x[0, 2, :4, :4] = -torch.rand(4, 4) - 0.1  # windows with nothing left after ReLU
    x[1 % shape[0], 3, 1, 1] = float("nan")
    x[:, 4] = torch.randint(-2, 3, (shape[0], shape[2], shape[3])).float()  # many ties of every sign
    return _channels_last(x.to(dtype))


def _eager_pool(x):
    return F.max_pool2d(F.relu(x), 2)


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(32, 8, 28, 28), (3, 8, 14, 14), (5, 8, 6, 10), (4, 8, 7, 9)])
def test_relu_max_pool_is_relu_then_torchs_pool_forward_and_backward(dtype, shape):
    x = _hard_input(shape, dtype)
    outputs, grads = [], []
    for pool in (fused.relu_max_pool, _eager_pool):
        leaf = x.clone().requires_grad_()
        out = pool(leaf)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
        (out * weights).float().nansum().backward()
        outputs.append(out)
        grads.append(leaf.grad)
    assert torch.equal(outputs[0].nan_to_num(7.0), outputs[1].nan_to_num(7.0))
    assert torch.equal(grads[0].nan_to_num(7.0), grads[1].nan_to_num(7.0))
    assert outputs[0].isnan().sum() == 1
    assert outputs[0].is_contiguous(memory_format=torch.channels_last)
    assert grads[0].is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert torch.equal(fused.relu_max_pool(x).nan_to_num(7.0), outputs[1].detach().nan_to_num(7.0))


@pytest.mark.skipif(fused._CONV_POINTWISE is None, reason="this torch has no oneDNN pointwise convolution")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_relu_predicts_torchs_convolution_then_relu(precision, bias):
    torch.manual_seed(4)
    conv = torch.nn.Conv2d(8, 16, 3, padding=(1, 1), bias=bias).to(memory_format=torch.channels_last)
    x = _channels_last(torch.randn(6, 8, 12, 12))
    if precision == "bf16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("oneDNN's bf16 convolution needs AVX-512 or AVX-NE-CONVERT; the next test covers this CPU")
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        assert fused.can_fuse_conv_relu(conv, x)
        ours, theirs = fused.conv_relu(conv, x), F.relu(conv(x))
    assert ours.dtype == theirs.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    assert torch.equal(ours, theirs)
    assert not fused.can_fuse_conv_relu(conv, x)  # a training step keeps the eager pair: it measured faster


def test_a_bf16_prediction_runs_on_a_cpu_without_onednn_bf16(monkeypatch):
    """Where oneDNN refuses bf16 convolutions (an AVX2-only CPU), the conv + ReLU blocks keep torch's eager pair,
    which converts: a bf16 prediction there once ended in oneDNN's RuntimeError. fp32 still fuses."""
    model = cs.build("cnn", (28, 28, 1), 10, seed=0).to(memory_format=torch.channels_last).eval()
    conv_relu_layers = [name for name, fusion in model.fusions.items() if fusion.conv_relu]
    assert conv_relu_layers, "the cnn's first convolution of each block is fused with its ReLU"
    conv = model.blocks[conv_relu_layers[0]][0]
    x = _channels_last(torch.rand(4, 1, 28, 28))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not fused.can_fuse_conv_relu(conv, x)
            bf16 = model(x).float()
        assert fused.can_fuse_conv_relu(conv, x) == (fused._CONV_POINTWISE is not None)
        fp32 = model(x)
    assert torch.allclose(bf16.softmax(dim=1), fp32.softmax(dim=1), atol=0.02)


def _train_step(model, x, y, precision: str, fuse: bool):
    plan = model.fusions
    model.fusions = plan if fuse else {}
    try:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(9)  # the same dropout masks on both sides
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(x).float()
        F.cross_entropy(logits, y).backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]
    finally:
        model.fusions = plan


@needs_kernels
@pytest.mark.parametrize("preset, precision", [("cnn", "fp32"), ("cnn", "bf16"), ("fast", "fp32")])
def test_a_fused_training_step_equals_the_eager_one(preset, precision):
    model = cs.build(preset, (28, 28, 1), 10, seed=0).to(memory_format=torch.channels_last).train()
    assert model.fusions, "the presets are Conv2D + ReLU blocks, some followed by a 2x2 max pool"
    x, y = _channels_last(torch.rand(16, 1, 28, 28)), torch.randint(0, 10, (16,))
    fused_logits, fused_grads = _train_step(model, x, y, precision, fuse=True)
    eager_logits, eager_grads = _train_step(model, x, y, precision, fuse=False)
    assert torch.equal(fused_logits, eager_logits)
    assert all(torch.equal(a, b) for a, b in zip(fused_grads, eager_grads))
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model(x), model.activations(x)[model.output_name])


@needs_kernels
def test_fasts_bf16_step_with_batch_norm_fused_stays_within_bf16s_resolution_of_the_eager_one():
    model = cs.build("fast", (28, 28, 1), 10, seed=0).to(memory_format=torch.channels_last).train()
    eager = copy.deepcopy(model)
    x, y = _channels_last(torch.rand(64, 1, 28, 28)), torch.randint(0, 10, (64,))
    fused_logits, fused_grads = _train_step(model, x, y, "bf16", fuse=True)
    eager_logits, eager_grads = _train_step(eager, x, y, "bf16", fuse=False)
    # logits through three bf16 layers: a few of bf16's steps (2^-8 relative) apart at most
    assert (fused_logits - eager_logits).abs().max() <= 4 * 2**-8 * eager_logits.abs().max()
    for ours, theirs in zip(fused_grads, eager_grads):
        assert (ours - theirs).abs().max() <= 0.05 * theirs.abs().max()
    for (name, ours), theirs in zip(model.named_buffers(), eager.buffers()):
        if name.endswith("num_batches_tracked"):
            assert int(ours) == int(theirs) == 1
        else:
            assert torch.allclose(ours, theirs, rtol=1e-3, atol=1e-4), name


def _batch_norm(channels: int, seed: int) -> torch.nn.BatchNorm2d:
    torch.manual_seed(seed)
    bn = torch.nn.BatchNorm2d(channels, eps=1e-3, momentum=0.1)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.8, 1.2)
    return bn


def _close_in_bf16(ours: torch.Tensor, theirs: torch.Tensor, steps: int = 1) -> bool:
    """Within `steps` of bf16's resolution (2^-8 relative) of the largest value: sums in another order may
    round a value to its neighbour, and a pool may then pick a window's other near-equal value."""
    return bool((ours.float() - theirs.float()).abs().max() <= steps * 2**-8 * theirs.float().abs().max())


@needs_kernels
@pytest.mark.parametrize("shape", [(32, 16, 28, 28), (16, 32, 14, 14), (8, 64, 7, 7), (3, 8, 6, 10)])
def test_batch_norm_relu_max_pool_trains_as_torchs_layers_within_bf16s_resolution(shape):
    torch.manual_seed(5)
    x = _channels_last((torch.randn(shape) * 2 + 0.5).to(torch.bfloat16))
    ours, theirs = _batch_norm(shape[1], 0), _batch_norm(shape[1], 0)
    outputs, grads = [], []
    for bn, layers in ((ours, lambda t: fused.batch_norm_relu_max_pool(ours, t)), (theirs, None)):
        leaf = x.clone().requires_grad_()
        assert fused.can_fuse_batch_norm_relu_max_pool(bn, leaf)
        out = layers(leaf) if layers else F.max_pool2d(F.relu(bn(leaf)), 2)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
        (out * weights).float().sum().backward()
        outputs.append(out)
        grads.append((leaf.grad, bn.weight.grad, bn.bias.grad))
    assert outputs[0].dtype == torch.bfloat16 and outputs[0].shape == outputs[1].shape
    assert outputs[0].is_contiguous(memory_format=torch.channels_last)
    assert _close_in_bf16(outputs[0], outputs[1])
    assert (outputs[0] != outputs[1]).float().mean() < 0.001  # the same values but for a rare rounding
    assert grads[0][0].is_contiguous(memory_format=torch.channels_last) and grads[0][0].dtype == torch.bfloat16
    assert _close_in_bf16(grads[0][0], grads[1][0])
    assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-3, atol=1e-3)  # weight, in fp32
    assert torch.allclose(grads[0][2], grads[1][2], rtol=1e-3, atol=1e-3)  # bias
    assert torch.allclose(ours.running_mean, theirs.running_mean, rtol=1e-5, atol=1e-6)
    assert torch.allclose(ours.running_var, theirs.running_var, rtol=1e-5, atol=1e-6)  # unbiased, as torch's
    assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 1


@needs_kernels
def test_batch_norm_relu_max_pool_predicts_with_the_running_statistics():
    x = _channels_last(torch.randn(8, 16, 14, 14).to(torch.bfloat16))
    bn = _batch_norm(16, 1).eval()
    with torch.inference_mode():
        assert fused.can_fuse_batch_norm_relu_max_pool(bn, x)
        ours, theirs = fused.batch_norm_relu_max_pool(bn, x), F.max_pool2d(F.relu(bn(x)), 2)
    assert _close_in_bf16(ours, theirs)
    assert int(bn.num_batches_tracked) == 0  # evaluation moves no statistics


@needs_kernels
def test_batch_norm_fuses_in_bf16_only_and_never_for_gradients_in_evaluation():
    bn = _batch_norm(8, 2)
    x = _channels_last(torch.randn(4, 8, 10, 10))
    assert not fused.can_fuse_batch_norm_relu_max_pool(bn, x)  # fp32 keeps torch's layers, bit for bit
    assert not fused.can_fuse_batch_norm_relu_max_pool(bn, x.to(torch.bfloat16).contiguous())  # NCHW
    assert not fused.can_fuse_batch_norm_relu_max_pool(bn, _channels_last(torch.randn(1, 8, 1, 1)).bfloat16())
    wide = _channels_last(torch.empty(2, 8, 2, fused._BATCH_NORM_ROW_LIMIT // 8 + 2, dtype=torch.bfloat16))
    assert not fused.can_fuse_batch_norm_relu_max_pool(bn, wide)  # rows too wide for the kernel's stack buffers
    bn.eval()
    x = x.to(torch.bfloat16).requires_grad_()  # a saliency map's input: torch's layers give its gradient
    assert not fused.can_fuse_batch_norm_relu_max_pool(bn, x)
    with torch.no_grad():
        assert fused.can_fuse_batch_norm_relu_max_pool(bn, x)


@needs_kernels
def test_batch_norm_results_do_not_depend_on_the_number_of_threads():
    x = _channels_last(torch.randn(64, 32, 14, 14).to(torch.bfloat16))
    g = _channels_last(torch.randn(64, 32, 7, 7).to(torch.bfloat16))
    results = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            bn, leaf = _batch_norm(32, 3), x.clone().requires_grad_()
            out = fused.batch_norm_relu_max_pool(bn, leaf)
            out.backward(g)
            results.append([out, leaf.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var])
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_the_plan_runs_batch_norm_and_relu_in_the_pool_that_follows():
    plan = cs.build("fast", (28, 28, 1), 10).fusions
    assert plan["batch_normalization"] == plan["activation"] == fused.Fusion(pooled=True)
    assert plan["max_pool2d"] == fused.Fusion(relu_pool=True, batch_norm="batch_normalization")
    assert plan["max_pool2d_2"].batch_norm == "batch_normalization_2"  # 7x7: an odd size, floored
    spec = {
        "layers": [
            {"type": "Conv2D", "filters": 4, "kernel_size": 3, "name": "c"},
            {"type": "BatchNormalization", "name": "bn"},
            {"type": "Activation", "activation": "relu", "name": "r"},
            {"type": "MaxPool2D", "pool_size": 2, "name": "p"},
            {"type": "Flatten", "name": "f", "inputs": "p"},
            {"type": "Flatten", "name": "g", "inputs": "bn"},  # bn has a second consumer: it runs as built
            {"type": "Concatenate", "name": "both", "inputs": ["f", "g"]},
            {"type": "Dense", "units": "num_classes", "activation": "softmax"},
        ]
    }
    plan = cs.build(spec, (12, 12, 1), 3).fusions
    assert "bn" not in plan and plan["p"] == fused.Fusion(relu_pool=True)


def test_the_plan_fuses_relu_into_the_pool_that_is_its_only_consumer():
    plan = cs.build("cnn", (28, 28, 1), 10).fusions
    assert plan == {
        "conv2d": fused.Fusion(conv_relu=True),
        "conv2d_1": fused.Fusion(pooled=True),
        "max_pool2d": fused.Fusion(relu_pool=True),
        "conv2d_2": fused.Fusion(conv_relu=True),
        "conv2d_3": fused.Fusion(pooled=True),
        "max_pool2d_1": fused.Fusion(relu_pool=True),
    }
    spec = {
        "layers": [
            {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu", "name": "a"},
            {"type": "MaxPool2D", "pool_size": 3, "name": "p3"},  # not 2x2: the ReLU stays in the convolution
            {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "tanh", "name": "b"},
            {"type": "Flatten"},
            {"type": "Dense", "units": "num_classes", "activation": "softmax"},
        ]
    }
    assert cs.build(spec, (28, 28, 1), 3).fusions == {"a": fused.Fusion(conv_relu=True)}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_other_layouts_take_the_eager_layers(precision):
    model = cs.build("cnn", (28, 28, 1), 10, seed=0).eval()  # NCHW, as a user's own module might be
    x = torch.rand(8, 1, 28, 28)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        assert torch.equal(model(x), model.activations(x)[model.output_name])


def test_tracing_records_the_eager_layers():
    model = cs.build("cnn", (28, 28, 1), 10, seed=0).to(memory_format=torch.channels_last).eval()
    x = _channels_last(torch.rand(2, 1, 28, 28))
    traced = torch.jit.trace(model, x)
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert "aten::max_pool2d" in kinds and "aten::relu" in kinds
    assert torch.equal(traced(x), model(x))


@pytest.mark.slow  # a Python subprocess
def test_without_a_compiler_there_are_no_kernels_and_training_still_works(tmp_path):
    script = textwrap.dedent("""
        import shutil, sys, torch
        shutil.which = lambda name: None  # no cc, gcc or clang on this machine
        import convscope as cs
        from convscope.models import native
        assert native.build() is None and native.library() is None
        model = cs.build("cnn", (28, 28, 1), 10).to(memory_format=torch.channels_last)
        x = torch.rand(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
        model(x).sum().backward()
        print("ok")
    """)
    env = {"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert not (tmp_path / "convscope" / "kernels").exists()


def test_the_switch_turns_the_kernels_off():
    assert not native.enabled({"CONVSCOPE_NATIVE": "0"})
    assert native.enabled({})


@needs_kernels
def test_the_library_is_built_once_per_source_and_kept_in_the_cache(tmp_path):
    first = native.build(tmp_path)
    assert first is not None and first.parent == tmp_path
    assert native.build(tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary left behind
    assert native.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "convscope" / "kernels"


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape, channels_last", [((32, 32, 14, 14), True), ((7, 1568), False), ((3, 5, 7, 9), True)])
def test_dropout_kernel_is_the_masks_of_the_torch_hash_times_the_scale(dtype, shape, channels_last):
    torch.manual_seed(8)
    x = torch.randn(shape).to(dtype)
    x = _channels_last(x) if channels_last else x
    x[0, 0] = float("nan")  # a dropped NaN stays NaN, as x * 0 does in eager torch
    seed, rate = 12345678901234567, 0.25
    bits = fused.dropout_bits(x.numel(), seed).as_strided(x.shape, x.stride())
    expected = x * ((bits >= fused.dropout_threshold(rate)).to(dtype) * (1.0 / (1.0 - rate)))
    ours = fused._dropout_kernel(x, seed, rate)
    assert torch.equal(ours.nan_to_num(9.0), expected.nan_to_num(9.0))
    assert ours.stride() == x.stride()


def test_the_dropout_hash_is_splitmix64_over_four_values_a_word():
    # splitmix64's published first output for state 0 (the counter 0 + golden): 0xE220A8397B1DCDAF
    word = 0xE220A8397B1DCDAF
    expected = [(word >> (16 * k)) & 0xFFFF for k in range(4)]
    assert fused.dropout_bits(4, 0).tolist() == expected
    bits = fused.dropout_bits(1 << 18, 77)
    assert int(bits.min()) >= 0 and int(bits.max()) <= 0xFFFF
    assert abs(bits.float().mean().item() / 65535 - 0.5) < 0.01


@needs_kernels
def test_dropout_backward_uses_the_forward_mask_in_the_gradients_layout():
    x = _channels_last(torch.randn(4, 8, 6, 6)).requires_grad_()
    torch.manual_seed(2)
    out = fused.dropout(x, 0.5)
    grad = torch.randn(4, 8, 6, 6)  # contiguous, while x is channels-last
    out.backward(grad)
    kept = out.detach() != 0
    assert torch.equal(x.grad, torch.where(kept, grad * 2.0, torch.zeros(())))
