"""Planted bugs: the checks that guard exactness must catch deliberately wrong layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, methods
from moonwalk_core.torch._activations import ReLUFragment

from .helpers import RTOL, grads_rel_error


class WrongVijpLeakyReLU(mw.LeakyReLU):
    """Divides by the wrong derivative on negative units."""

    def _vijp(self, x_in, h_in, frag):
        return h_in / torch.where(x_in <= 0, 2 * self.negative_slope, 1.0).to(h_in)


class DroppedFragmentReLU(mw.ReLU):
    """Stores zeros instead of h at inactive units."""

    def _fragment(self, res, h_out, block_size):
        return ReLUFragment(torch.zeros_like(super()._fragment(res, h_out, block_size).values))


class StaleBoundaryConv(mw.CausalConv1d):
    """Stores boundary values shifted by one position."""

    def _fragment(self, res, h_out, block_size):
        frag = super()._fragment(res, h_out, block_size)
        return None if frag is None else frag._replace(values=frag.values.roll(1, dims=2))


def _swap(model, cls, type_name):
    for i, layer in enumerate(model.layers):
        if layer.type_name == type_name:
            layer.__class__ = cls
            return i
    raise AssertionError(type_name)


def _net(activation: str):
    spec = arch.causal_conv_net(3, channels=4, length=32, activation=activation)
    model = mw.build(spec, seed=0, dtype="float64")
    x = mw.random_input((2, *spec.input_shape), seed=1)
    y = torch.tensor([1, 3])
    return model, x, y


def _layer_errors(model, i, x, block_size=None):
    with torch.no_grad():
        for layer in model.layers[:i]:
            x = layer(x)
    return mw.check_layer(model.layers[i], x, block_size=block_size)


def test_checker_catches_a_wrong_vijp() -> None:
    model, x, y = _net("leaky_relu")
    ref = mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())[1]
    i = _swap(model, WrongVijpLeakyReLU, "leaky_relu")
    assert _layer_errors(model, i, x)["vijp"] > 1e-2
    result = mw.gradient(model, F.cross_entropy, x, y, method=methods.Moonwalk(tolerance=1.0))
    assert grads_rel_error(result.grads, ref) > 1e-3
    assert result.self_check > RTOL["float64"]  # the free self-check sees it too


def test_checker_catches_a_dropped_fragment() -> None:
    model, x, y = _net("relu")
    ref = mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())[1]
    i = _swap(model, DroppedFragmentReLU, "relu")
    assert _layer_errors(model, i, x)["vijp"] > 1e-2
    result = mw.gradient(model, F.cross_entropy, x, y, method=methods.Moonwalk(tolerance=1.0))
    assert grads_rel_error(result.grads, ref) > 1e-3


def test_checker_catches_stale_boundary_fragments() -> None:
    model, x, y = _net("leaky_relu")
    i = _swap(model, StaleBoundaryConv, "causal_conv1d")
    assert _layer_errors(model, i, x, block_size=None)["vijp"] < RTOL["float64"]
    assert _layer_errors(model, i, x, block_size=8)["vijp"] > 1e-3
