"""KerasAdam is torch's Adam with Keras' epsilon, step for step, and a fit never imports torch.compile."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from convscope.training.adam import KerasAdam


def _train(optimizer_for, steps: int = 5):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    optimizer = optimizer_for(model.parameters())
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("fused", [True, False])
def test_keras_adam_steps_as_torchs_adam_with_kerass_epsilon(fused):
    ours, ours_opt = _train(lambda p: KerasAdam(p, lr=1e-2, fused=fused))
    theirs, theirs_opt = _train(lambda p: torch.optim.Adam(p, lr=1e-2, eps=1e-7, fused=fused))
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
    assert ours_opt.param_groups[0]["eps"] == 1e-7
    mine, other = ours_opt.state_dict(), theirs_opt.state_dict()
    assert mine["param_groups"] == other["param_groups"]
    for key, state in mine["state"].items():
        assert all(torch.equal(state[name], other["state"][key][name]) for name in state)


def test_keras_adam_resumes_from_its_state_dict():
    model, optimizer = _train(lambda p: KerasAdam(p, lr=1e-2), steps=3)
    fresh = KerasAdam(model.parameters(), lr=5.0)
    fresh.load_state_dict(optimizer.state_dict())
    assert fresh.param_groups[0]["lr"] == 1e-2
    assert int(fresh.state[next(iter(model.parameters()))]["step"]) == 3


def test_a_step_takes_no_gradients_and_a_closure_still_can():
    torch.manual_seed(1)
    weight = torch.nn.Parameter(torch.randn(3))
    optimizer = KerasAdam([weight], lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = (weight**2).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert loss is not None and loss.requires_grad  # the closure ran with gradients on
    assert not weight.grad_fn and weight.requires_grad  # the update itself was not recorded


@pytest.mark.slow  # a Python subprocess, so the import is seen from a fresh interpreter
def test_a_fit_does_not_import_torch_compile():
    script = textwrap.dedent("""
        import sys
        import convscope as cs
        data = cs.load("mnist-5k").subset(range(256))
        cs.fit(cs.build("fast", data.input_shape, data.num_classes), data, epochs=1, batch_size=64, verbose=False)
        print("torch._dynamo" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
