"""RevNets: Moonwalk, RevBackprop and PureForward equal Backprop (float64, 1e-10 relative);
RevBackprop stores no activations and its reconstruction drifts with depth in float32."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, get_backend, methods

from .helpers import BACKENDS, assert_grads_close, batch, cross_entropy, rel_error


def _data(spec: arch.ArchSpec, size: int, dtype: str, seed: int = 0):
    return batch("torch", spec, size, dtype, seed)


def _revnet_1d(depth: int) -> arch.ArchSpec:
    layers = [{"type": "revnet_coupling", "hidden": 4, "kernel_size": 3}] * depth
    layers += [{"type": "max_pool", "size": 4}, {"type": "flatten"},
               {"type": "linear", "features": 3}]
    return arch.load({"input_shape": [4, 8], "layers": layers})


SPECS = {
    "2d_depth1": arch.revnet(1, channels=4, size=4, hidden=4, classes=3),
    "2d_depth4": arch.revnet(4, channels=6, size=6, hidden=5, kernel_size=3, classes=4),
    "1d_depth3": _revnet_1d(3),
}
METHODS = [methods.Moonwalk(), methods.Moonwalk(checkpoint_every=2, pack_residuals=False),
           methods.RevBackprop(),
           methods.PureForward(chunk_size=50)]


@pytest.mark.parametrize("init", ["orthogonal", "default"])
@pytest.mark.parametrize("name", list(SPECS))
def test_every_method_equals_backprop_on_revnets(name: str, init: str) -> None:
    spec = SPECS[name]
    model = mw.build(spec, seed=7, dtype="float64", init=init)
    x, y = _data(spec, 3, "float64")
    loss_ref, ref = mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())
    for method in METHODS:
        loss, grads = mw.value_and_grad(model, F.cross_entropy, x, y, method=method)
        assert rel_error(loss, loss_ref) < 1e-14
        assert_grads_close(grads, ref, "float64", f"{method} on {name} ({init})")


def test_coupling_inverse_reconstructs_the_input() -> None:
    model = mw.build(SPECS["2d_depth4"], seed=0, dtype="float64", init="default")
    x, _ = _data(SPECS["2d_depth4"], 2, "float64")
    layer = model.layers[0]
    with torch.no_grad():
        assert rel_error(layer.inverse(layer(x)), x) < 1e-14


def test_rev_backprop_stores_no_activations_of_the_couplings() -> None:
    stored = {}
    for depth in (2, 8):
        spec = arch.revnet(depth, channels=4, size=8, hidden=4, classes=2)
        model = mw.build(spec, seed=0, dtype="float64")
        x, y = _data(spec, 2, "float64")
        rev = mw.gradient(model, F.cross_entropy, x, y, method=methods.RevBackprop())
        backprop = mw.gradient(model, F.cross_entropy, x, y, method=methods.Backprop())
        assert rev.stored_bytes["total"] < backprop.stored_bytes["total"]
        stored[depth] = rev.stored_bytes["total"]
    assert stored[2] == stored[8]  # independent of depth: input, prefix output, tail inputs


def test_rev_backprop_reconstruction_drifts_with_depth_in_float32() -> None:
    # the 2024 paper's stability comparison: RevBackprop's inverses accumulate round-off going
    # down, so the reconstructed x_0 gets worse with depth (measured ~6e-8 at 2 couplings and
    # ~3e-6 at 32 with this spec); Moonwalk never inverts the layers
    drift = {}
    for depth in (2, 32):
        spec = arch.revnet(depth, channels=4, size=8, hidden=8, classes=2)
        model = mw.build(spec, seed=0, dtype="float32")
        x, y = _data(spec, 2, "float32")
        result = mw.gradient(model, F.cross_entropy, x, y, method=methods.RevBackprop())
        drift[depth] = result.info["reconstruction_error"]
    assert 0 < drift[2] < 1e-6
    assert drift[32] > 10 * drift[2], drift


@pytest.mark.parametrize("backend", BACKENDS)
def test_rev_backprop_rejects_models_it_cannot_invert(backend: str) -> None:
    mwb = get_backend(backend)
    conv = arch.conv2d_net(1, channels=4, in_channels=2, size=4, patch=2)
    model = mwb.build(conv, seed=0, dtype="float64")
    x, y = batch(backend, conv, 2)
    with pytest.raises(ValueError, match=r"layer 0 \(stem\): RevBackprop .* revnet_coupling"):
        mwb.gradient(model, cross_entropy(backend), x, y, method=methods.RevBackprop())
    spec = arch.load({"input_shape": [4, 4, 4], "layers": [
        {"type": "revnet_coupling", "hidden": 2, "kernel_size": 1},
        {"type": "conv2d", "kernel_size": 3},
        {"type": "revnet_coupling", "hidden": 2, "kernel_size": 1},
        {"type": "flatten"}]})
    model = mwb.build(spec, seed=0, dtype="float64")
    x, _ = batch(backend, spec, 2)
    with pytest.raises(ValueError, match=r"layer 1 \(conv2d\) cannot be inverted.* layer 2"):
        mwb.gradient(model, lambda z, t: (z * z).sum(), x, x, method=methods.RevBackprop())


@pytest.mark.parametrize("init", ["orthogonal", "default"])
def test_coupling_condition_estimate_is_on_the_safe_side(init: str) -> None:
    spec = arch.revnet(1, channels=4, size=8, hidden=4, classes=4)
    layer = mw.build(spec, seed=0, dtype="float64", init=init).layers[0]
    cond = layer.condition()
    assert 1 < cond["amplification"] < cond["amplification_bound"]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 4, 8, 8, generator=gen, dtype=torch.float64)
    h_out = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        h_in = layer.vjp(layer.forward_with_residual(x)[1], h_out)
        for _ in range(5):
            # a relative perturbation of h_in comes out of the vijp amplified by at most this
            e = torch.randn(x.shape, generator=gen, dtype=torch.float64) * 1e-8
            error_out = rel_error(layer.vijp(x, h_in + e * h_in.norm(), None), h_out)
            assert error_out / rel_error(h_in + e * h_in.norm(), h_in) < cond["amplification"]
