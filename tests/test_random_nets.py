"""Random networks (hypothesis): Moonwalk's gradients equal the framework's own Backprop
(float64, 1e-10 relative) in both backends, with and without blocks and checkpoints."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moonwalk_core import arch, get_backend, methods

from .helpers import BACKENDS, RTOL, assert_grads_close, batch, cross_entropy

ACTIVATIONS = [{"type": "relu"}, {"type": "leaky_relu", "negative_slope": 0.2},
               {"type": "leaky_relu", "negative_slope": 0.7}]


@st.composite
def nets_1d(draw: st.DrawFn) -> arch.ArchSpec:
    """Random 1D nets: stem, causal convs (kernel, dilation), leaky ReLU or ReLU, patch conv,
    optional narrowing linear layers."""
    channels = draw(st.integers(2, 6))
    patch = draw(st.sampled_from([1, 2, 4]))
    length = patch * draw(st.integers(2, 6))
    stem_kernel = draw(st.integers(1, 3))
    layers: list[dict] = [{"type": "stem", "channels": channels, "kernel_size": stem_kernel}]
    for _ in range(draw(st.integers(1, 4))):
        layers.append({"type": "causal_conv1d", "kernel_size": draw(st.integers(1, 4)),
                       "dilation": draw(st.integers(1, 3))})
        layers.append(draw(st.sampled_from(ACTIVATIONS)))
    head = draw(st.integers(1, channels * patch))
    layers += [{"type": "patch_conv1d", "channels": head, "patch": patch}, {"type": "flatten"}]
    features = head * (length // patch)
    layers.append({"type": "linear", "features": draw(st.integers(1, features))})
    in_channels = draw(st.integers(1, min(3, channels)))  # a stem never narrows
    return arch.load({"input_shape": [in_channels, length], "layers": layers})


@st.composite
def nets_2d(draw: st.DrawFn) -> arch.ArchSpec:
    """Random 2D nets: stem, conv2d layers (mode, kernel), (leaky) ReLU, optional pool, patch
    conv, flatten, narrowing linear."""
    channels, patch = draw(st.integers(2, 4)), draw(st.sampled_from([1, 2]))
    height, width = 2 * patch * draw(st.integers(1, 3)), 2 * patch * draw(st.integers(1, 3))
    input_shape = [draw(st.integers(1, min(3, channels))), height, width]  # a stem never narrows
    layers: list[dict] = [{"type": "stem", "channels": channels,
                           "kernel_size": draw(st.integers(1, 3))}]
    for _ in range(draw(st.integers(1, 3))):
        mode = draw(st.sampled_from(["masked", "circular"]))
        k_max = 4 if mode == "masked" else min(4, height, width)
        layers.append({"type": "conv2d", "kernel_size": draw(st.integers(1, k_max)),
                       "mode": mode})
        layers.append(draw(st.sampled_from(ACTIVATIONS)))
    if draw(st.booleans()):
        layers.append({"type": draw(st.sampled_from(["avg_pool", "max_pool"])), "size": 2})
        height, width = height // 2, width // 2
    head = draw(st.integers(1, channels * patch * patch))
    layers += [{"type": "patch_conv2d", "channels": head, "patch": patch}, {"type": "flatten"}]
    features = head * (height // patch) * (width // patch)
    layers.append({"type": "linear", "features": draw(st.integers(1, features))})
    return arch.load({"input_shape": input_shape, "layers": layers})


def _lcm_dilations(spec: arch.ArchSpec) -> int:
    return math.lcm(*[ls.fields.get("dilation", 1) for ls in spec.layers
                      if ls.type == "causal_conv1d"])


def _check(backend: str, spec: arch.ArchSpec, seed: int, size: int,
           options: list[methods.Moonwalk]) -> None:
    """Each Moonwalk variant against Backprop on the same weights and batch.

    The oracle is torch's Backprop in both backends (JAX gets torch's weights): one JAX compile
    per variant instead of one more for ``jax.grad``, whose agreement with torch's autograd
    tests/test_cross_backend.py checks.
    """
    mwt, mw = get_backend("torch"), get_backend(backend)
    torch_model = mwt.build(spec, seed=seed, dtype="float64")
    x_t, y_t = batch("torch", spec, size, seed=seed)
    ref = mwt.gradient(torch_model, cross_entropy("torch"), x_t, y_t,
                       method=methods.Backprop()).grads
    model = mw.load_weights(mw.build(spec, dtype="float64"), mwt.export_weights(torch_model))
    x, y = batch(backend, spec, size, seed=seed)
    for method in options:
        result = mw.gradient(model, cross_entropy(backend), x, y, method=method)
        assert_grads_close(result.grads, ref, "float64", f"{backend} {method} on {spec.to_dict()}")
        assert result.self_check is not None and result.self_check < RTOL["float64"]


def _variants(backend: str, seed: int, variants: list[methods.Moonwalk]
              ) -> list[methods.Moonwalk]:
    """All variants in torch; one per example in JAX, alternating with the example's seed
    (each costs a compilation of several seconds)."""
    return variants if backend == "torch" else [variants[seed % len(variants)]]


@pytest.mark.parametrize("backend", BACKENDS)
@given(spec=nets_1d(), block=st.integers(1, 3), every=st.sampled_from([None, 1, 2, 3]),
       seed=st.integers(0, 2**16))
def test_moonwalk_equals_backprop_on_random_1d_nets(backend, spec, block, every, seed) -> None:
    block_size = block * _lcm_dilations(spec)
    _check(backend, spec, seed, 3, _variants(backend, seed, [
        methods.Moonwalk(block_size=block_size, checkpoint_every=every),
        methods.Moonwalk(pack_residuals=False, checkpoint_every=every),
        methods.Moonwalk(), methods.Moonwalk(block_size=block_size)]))


@pytest.mark.parametrize("backend", BACKENDS)
@given(spec=nets_2d(), block=st.sampled_from([None, 1, 2, 3]), seed=st.integers(0, 2**16))
def test_moonwalk_equals_backprop_on_random_2d_nets(backend, spec, block, seed) -> None:
    _check(backend, spec, seed, 2, _variants(backend, seed, [
        methods.Moonwalk(block_size=block),
        methods.Moonwalk(block_size=block, checkpoint_every=2, pack_residuals=False)]))
