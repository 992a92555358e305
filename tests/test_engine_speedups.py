"""The CPU engine's speed-ups keep their meaning: Keras' dropout, max pooling, and a malloc that keeps freed memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from convscope.models.layers import KerasDropout, KerasMaxPool


def _ones(shape, channels_last: bool = False, dtype=torch.float32) -> torch.Tensor:
    x = torch.ones(shape, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("rate", [0.2, 0.25, 0.5])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dropout_drops_the_rate_and_scales_the_rest(rate, channels_last):
    torch.manual_seed(0)
    x = _ones((64, 16, 28, 28), channels_last)  # 802,816 values: the dropped share is within 0.003 of the rate
    y = KerasDropout(rate).train()(x)
    assert y.shape == x.shape and y.stride() == x.stride()
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - rate) < 0.003
    assert torch.allclose(y[y != 0], torch.tensor(1.0 / (1.0 - rate)))


def test_dropout_masks_are_independent_across_positions_and_channels():
    # Four mask values come from one 64-bit draw: neighbours in memory must still be dropped independently.
    torch.manual_seed(1)
    x = _ones((256, 8, 16, 16), channels_last=True)
    kept = (KerasDropout(0.5).train()(x) != 0).float()
    a, b = kept[:, 0].flatten(), kept[:, 1].flatten()  # channel 0 and 1 sit side by side in channels-last memory
    both = (a * b).mean().item()
    assert abs(both - 0.25) < 0.01  # P(both kept) = 0.5 * 0.5 when independent
    for channel in range(8):  # and every lane of the 64-bit word keeps half
        assert abs(kept[:, channel].mean().item() - 0.5) < 0.01


def test_dropout_gradient_is_the_mask_and_eval_is_identity():
    torch.manual_seed(2)
    layer = KerasDropout(0.25).train()
    x = torch.randn(8, 4, 6, 6, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    expected = torch.where(y != 0, torch.tensor(4.0 / 3.0), torch.tensor(0.0))
    assert torch.allclose(x.grad, expected)
    x2 = torch.randn(8, 4, 6, 6)
    assert torch.equal(layer.eval()(x2), x2)
    assert torch.equal(KerasDropout(0.0).train()(x2), x2)


def test_dropout_is_reproducible_from_the_seed_and_works_in_bf16():
    x = _ones((4, 32, 14, 14), channels_last=True, dtype=torch.bfloat16)
    torch.manual_seed(3)
    first = KerasDropout(0.25).train()(x)
    torch.manual_seed(3)
    second = KerasDropout(0.25).train()(x)
    assert first.dtype == torch.bfloat16 and torch.equal(first, second)


def test_dropout_on_a_strided_view_falls_back_to_torch():
    torch.manual_seed(4)
    x = torch.ones(64, 64)[:, ::2]  # not dense: torch's own dropout handles it
    y = KerasDropout(0.5).train()(x)
    assert y.shape == (64, 32) and 0.4 < (y == 0).float().mean().item() < 0.6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    "shape, pool",
    [
        ((64, 32, 28, 28), 2),
        ((64, 32, 14, 14), 2),
        ((64, 8, 12, 18), (3, 2)),
        ((64, 32, 7, 7), 2),
        ((1, 32, 28, 28), 2),
    ],
)
def test_max_pool_predicts_the_same_values_as_torch(dtype, shape, pool):
    torch.manual_seed(5)
    x = torch.randn(shape).to(dtype).contiguous(memory_format=torch.channels_last)
    x[0, 0, :4, :4] = 0.0  # ties inside a window
    with torch.inference_mode():
        ours, theirs = KerasMaxPool(pool)(x), torch.nn.MaxPool2d(pool)(x)
    assert torch.equal(ours, theirs)
    assert ours.is_contiguous(memory_format=torch.channels_last)  # the next convolution wants this layout


def test_max_pool_trains_with_torchs_gradient():
    torch.manual_seed(6)
    x = torch.randn(64, 32, 14, 14).contiguous(memory_format=torch.channels_last)
    grads = []
    for pool in (KerasMaxPool(2), torch.nn.MaxPool2d(2)):
        leaf = x.clone().requires_grad_()
        (pool(leaf) * torch.arange(7 * 7).view(7, 7)).sum().backward()
        grads.append(leaf.grad)
    assert torch.equal(grads[0], grads[1])


_FAULTS_SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    import torch.nn.functional as F
    import convscope as cs
    from convscope.training.allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    torch.manual_seed(0)
    model = cs.build("cnn", (28, 28, 1), 10).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters())
    x, y = torch.rand(32, 1, 28, 28).contiguous(memory_format=torch.channels_last), torch.randint(0, 10, (32,))
    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    for _ in range(10):  # the heap grows to the step's peak, then stays
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
""")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc thresholds are a Linux matter")
def test_freed_activations_are_reused_without_page_faults():
    def faults_per_step(mode: str) -> float:
        done = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], capture_output=True, text=True, check=True)
        return float(done.stdout.strip())

    # The cnn's training step at batch 32 in fp32: glibc alone gives its activations back and faults them in
    # again every step (measured: 2,400 to 3,800 faults a step); kept, they are reused (measured: 0 to 80).
    default = faults_per_step("default")
    assert default > 500
    assert faults_per_step("keep") < 0.1 * default


def test_prediction_batches_are_small_on_the_cpu_and_large_on_a_gpu():
    from convscope.training.trained_model import predict_batch

    assert predict_batch(torch.device("cpu")) == 64  # activations stay in cache
    assert predict_batch(torch.device("cuda", 0)) == 1024  # a GPU needs work to fill its cores
