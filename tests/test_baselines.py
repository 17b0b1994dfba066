"""The user's baselines compute the same gradient as the package, with the same weights.

Plain torch modules under autograd and under ``checkpoint_sequential`` at every segment count,
and the plain ``lax.conv_general_dilated`` net under ``jax.grad`` and ``jax.checkpoint`` at every
segment count, against the package's Backprop and Moonwalk in float64 (fragmental and
non-fragmental nets). Their memory figures must order as checkpointing promises.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from moonwalk_core import arch, baselines, get_backend, methods
from moonwalk_core.measure.adapter import adapter, synthetic_batch

from .helpers import RTOL, grads_rel_error

ACTIVATIONS = ["relu", "leaky_relu"]


def _spec(activation: str, depth: int = 3) -> arch.ArchSpec:
    return arch.causal_conv_net(depth, channels=4, length=16, patch=8, activation=activation)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_plain_torch_and_every_checkpoint_segment_count_equal_moonwalk(activation: str) -> None:
    be = adapter("torch")
    spec = _spec(activation)
    model = be.mw.build(spec, 0, "float64")
    x, y = synthetic_batch(be, spec, 3, dtype="float64", seed=1)
    reference = be.mw.gradient(model, be.loss_fn, x, y, method=methods.Backprop()).grads
    moonwalk = be.mw.gradient(model, be.loss_fn, x, y, method=methods.Moonwalk()).grads
    assert grads_rel_error(moonwalk, reference) < RTOL["float64"]
    modules = len(get_backend("torch").to_module(model))
    for segments in [None, *range(1, modules + 1)]:
        plain = baselines.torch_plain_gradient(model, be.loss_fn, x, y, segments=segments)()
        assert grads_rel_error(plain, reference) < 1e-13, segments
        assert grads_rel_error(plain, moonwalk) < RTOL["float64"], segments


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_plain_jax_and_every_checkpoint_segment_count_equal_moonwalk(activation: str) -> None:
    import jax

    be = adapter("jax")
    jax.config.update("jax_enable_x64", True)
    spec = _spec(activation, depth=2)  # one compilation per segment count: keep it small
    model = be.mw.build(spec, 0, "float64")
    x, y = synthetic_batch(be, spec, 3, dtype="float64", seed=1)
    reference = be.mw.gradient(model, be.loss_fn, x, y, method=methods.Backprop()).grads
    moonwalk = be.mw.gradient(model, be.loss_fn, x, y, method=methods.Moonwalk()).grads
    assert grads_rel_error(moonwalk, reference) < RTOL["float64"]
    for segments in [None, *range(1, len(spec.layers) + 1)]:
        plain = baselines.jax_plain_gradient(model, be.loss_fn, x, y, segments=segments)()
        assert grads_rel_error(plain, reference) < 1e-13, segments
        assert grads_rel_error(plain, moonwalk) < RTOL["float64"], segments


def test_the_plain_jax_memory_carries_the_package_s_source_label() -> None:
    from moonwalk_core.jax import _memory

    assert baselines.JAX_SOURCE == _memory.SOURCE


def test_plain_nets_refuse_what_they_cannot_build() -> None:
    be = adapter("torch")
    spec = _spec("relu")
    model = be.mw.build(spec, 0, "float32")
    x, y = synthetic_batch(be, spec, 2, dtype="float32", seed=1)
    with pytest.raises(ValueError, match="segments=0"):
        baselines.torch_plain_gradient(model, be.loss_fn, x, y, segments=0)
    with pytest.raises(ValueError, match="1D family"):
        baselines.jax_plain_loss(arch.revnet(2, channels=2, size=4, hidden=2, classes=2),
                                 be.loss_fn)
    with pytest.raises(ValueError, match="segments=99"):
        baselines.jax_plain_loss(spec, be.loss_fn, segments=99)


def test_checkpointing_lowers_the_peak_and_the_whole_step_counts_weights_and_adam() -> None:
    import torch

    be = adapter("torch")
    spec = arch.causal_conv_net(8, channels=8, length=64, patch=8, activation="relu")
    model = be.mw.build(spec, 0, "float32")
    x, y = synthetic_batch(be, spec, 4, dtype="float32", seed=1)
    plain = baselines.torch_peak(baselines.torch_plain_gradient(model, be.loss_fn, x, y))
    ckpt = baselines.torch_peak(baselines.torch_plain_gradient(model, be.loss_fn, x, y,
                                                               segments=4))
    assert ckpt < 0.7 * plain
    weights = sum(p.numel() * p.element_size() for p in model.parameters())

    def step(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        be.mw.backward(m, be.loss_fn, x, y, method=methods.Backprop())

    whole = baselines.torch_step_peak(lambda: be.mw.build(spec, 0, "float32"), step, x, y)
    # weights, gradients and Adam's two moments are all live in the second step
    assert whole >= plain + 4 * weights


def test_frontier_takes_the_least_peak_no_slower_than_the_time() -> None:
    points = [(1.0, 10.0), (2.0, 5.0), (3.0, 2.0)]
    assert baselines.frontier(points, 2.5) == 5.0
    assert baselines.frontier(points, 0.5) == 2.0  # nothing that fast: the strictest point
    assert math.isnan(baselines.frontier([], 1.0))
    assert baselines.segment_counts(3) == [1, 2, 3]
    assert np.isfinite(baselines.frontier(points, 3.0))
