"""The 2024 forward modes: PureForward and NaiveForward equal Backprop (float64, 1e-10), and
refuse what they cannot do (both backends)."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, get_backend, methods

from .helpers import BACKENDS, RTOL, assert_grads_close, batch, cross_entropy


def _data(spec: arch.ArchSpec, size: int, dtype: str, seed: int = 0):
    return batch("torch", spec, size, dtype, seed)


LEAKY = {"type": "leaky_relu", "negative_slope": 0.3}
# PureForward needs every layer surjective: no stem, no ReLU, no expanding linear
SURJECTIVE_NETS = {
    "1d": {"input_shape": [3, 12], "layers": [
        {"type": "causal_conv1d", "kernel_size": 3, "dilation": 2}, LEAKY,
        {"type": "patch_conv1d", "channels": 4, "patch": 3}, LEAKY, {"type": "flatten"},
        {"type": "linear", "features": 5}]},
    "2d_masked": {"input_shape": [2, 6, 4], "layers": [
        {"type": "conv2d", "kernel_size": 3, "mode": "masked"}, LEAKY,
        {"type": "max_pool", "size": 2}, {"type": "patch_conv2d", "channels": 2, "patch": 1},
        {"type": "flatten"}, {"type": "linear", "features": 4}]},
    "2d_circular": {"input_shape": [3, 4, 4], "layers": [
        {"type": "conv2d", "kernel_size": 3, "mode": "circular"}, LEAKY,
        {"type": "avg_pool", "size": 2}, {"type": "flatten"}, {"type": "linear", "features": 6}]},
    "revnet": arch.revnet(2, channels=4, size=4, hidden=3, classes=3).to_dict(),
}


@pytest.mark.parametrize("name", list(SURJECTIVE_NETS))
def test_pure_forward_equals_backprop(name: str) -> None:
    spec = arch.load(SURJECTIVE_NETS[name])
    model = mw.build(spec, seed=3, dtype="float64")
    x, y = _data(spec, 3, "float64")
    _, ref = mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())
    for chunk_size in (5, 10_000):
        result = mw.gradient(model, F.cross_entropy, x, y,
                             method=methods.PureForward(chunk_size=chunk_size))
        assert_grads_close(result.grads, ref, "float64", f"PureForward({chunk_size}) on {name}")
        assert result.self_check is not None and result.self_check < RTOL["float64"]


@pytest.mark.parametrize("name", ["1d_family", "2d_family", "revnet"])
def test_naive_forward_equals_backprop_on_tiny_nets(name: str) -> None:
    spec = {"1d_family": arch.causal_conv_net(1, channels=2, length=8, patch=4,
                                              activation="relu", classes=3),
            "2d_family": arch.conv2d_net(1, channels=2, in_channels=1, size=4, patch=2,
                                         classes=3),
            "revnet": arch.revnet(1, channels=2, size=4, hidden=2, classes=2)}[name]
    model = mw.build(spec, seed=4, dtype="float64")
    x, y = _data(spec, 2, "float64")
    _, ref = mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())
    for chunk_size in (5, 64):
        result = mw.gradient(model, F.cross_entropy, x, y,
                             method=methods.NaiveForward(chunk_size=chunk_size))
        assert result.info["jvps"] == sum(p.numel() for p in model.parameters())
        assert_grads_close(result.grads, ref, "float64", f"NaiveForward on {name}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_pure_forward_names_the_layer_it_cannot_invert(backend: str) -> None:
    mwb = get_backend(backend)
    stem_net = arch.conv2d_net(1, channels=4, in_channels=2, size=4, patch=2)
    model = mwb.build(stem_net, seed=0, dtype="float64")
    x, y = batch(backend, stem_net, 2)
    with pytest.raises(ValueError, match=r"layer 0 \(stem\): .* PureForward has no Phase II"):
        mwb.gradient(model, cross_entropy(backend), x, y, method=methods.PureForward())
    relu_net = arch.load({"input_shape": [2, 4, 4], "layers": [
        {"type": "conv2d", "kernel_size": 3}, {"type": "relu"}, {"type": "flatten"},
        {"type": "linear", "features": 3}]})
    model = mwb.build(relu_net, seed=0, dtype="float64")
    x, y = batch(backend, relu_net, 2)
    with pytest.raises(ValueError, match=r"layer 1 \(relu\): its Jacobian is not surjective"):
        mwb.gradient(model, cross_entropy(backend), x, y, method=methods.PureForward())


@pytest.mark.parametrize("backend", BACKENDS)
def test_naive_forward_refuses_large_models(backend: str) -> None:
    mwb = get_backend(backend)
    spec = arch.revnet(2, channels=4, size=4, hidden=3, classes=3)
    model = mwb.build(spec, seed=0, dtype="float64")
    x, y = batch(backend, spec, 2)
    count = sum(int(np.prod(w.shape)) for w in mwb.export_weights(model).values())
    with pytest.raises(ValueError, match=rf"has {count} parameters, above max_parameters=10"):
        mwb.gradient(model, cross_entropy(backend), x, y,
                     method=methods.NaiveForward(max_parameters=10))
