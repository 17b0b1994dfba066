"""Planted bugs: the checks that guard exactness must catch deliberately wrong layers, in both
backends (check_layer, the gradients against Backprop, and the free self-check)."""

from __future__ import annotations

import pytest

from moonwalk_core import arch, get_backend, methods

from .helpers import BACKENDS, RTOL, batch, cross_entropy, grads_rel_error


def _bugs(backend: str) -> dict[str, type]:
    """Subclasses of the backend's layers, each with one bug, by the layer type they replace."""
    mw = get_backend(backend)
    if backend == "torch":
        import torch

        from moonwalk_core.torch._activations import ReLUFragment

        def divisor(negative, slope, like):
            return torch.where(negative, 2 * slope, 1.0).to(like)

        def roll(v):
            return v.roll(1, dims=2)
    else:
        import jax.numpy as jnp

        from moonwalk_core.jax._activations import ReLUFragment

        def divisor(negative, slope, like):
            return jnp.where(negative, 2 * slope, 1.0).astype(like.dtype)

        def roll(v):
            return jnp.roll(v, 1, axis=2)

    class WrongVijpLeakyReLU(mw.LeakyReLU):
        """Divides by the wrong derivative on negative units."""

        def _vijp(self, x_in, h_in, frag, constants):
            return h_in / divisor(x_in <= 0, self.negative_slope, h_in)

    class DroppedFragmentReLU(mw.ReLU):
        """Stores zeros instead of h at inactive units."""

        def _fragment(self, res, h_out, block_size):
            values = super()._fragment(res, h_out, block_size).values
            return ReLUFragment(values * 0)

    class StaleBoundaryConv(mw.CausalConv1d):
        """Stores boundary values shifted by one position."""

        def _fragment(self, res, h_out, block_size):
            frag = super()._fragment(res, h_out, block_size)
            if frag is None:
                return None
            return type(frag)(roll(frag.values), frag.block_size)

    return {"leaky_relu": WrongVijpLeakyReLU, "relu": DroppedFragmentReLU,
            "causal_conv1d": StaleBoundaryConv}


def _swap(backend: str, model, type_name: str):
    """``(model with its first ``type_name`` layer replaced by the buggy class, its index)``."""
    i = next(i for i, layer in enumerate(model.layers) if layer.type_name == type_name)
    bug = _bugs(backend)[type_name]
    if backend == "torch":
        model.layers[i].__class__ = bug
        return model, i
    import equinox as eqx

    old = model.layers[i]
    new = {"leaky_relu": lambda: bug(old.negative_slope, index=i),
           "relu": lambda: bug(index=i),
           "causal_conv1d": lambda: bug(old.weight, old.bias, old.dilation, index=i)}[type_name]()
    return eqx.tree_at(lambda m: m.layers[i], model, new), i


def _net(backend: str, activation: str):
    spec = arch.causal_conv_net(3, channels=4, length=32, activation=activation)
    model = get_backend(backend).build(spec, seed=0, dtype="float64")
    x, y = batch(backend, spec, 2, seed=1)
    return model, x, y


def _layer_errors(backend: str, model, i: int, x, block_size=None):
    for layer in model.layers[:i]:
        x = layer(x)
    if backend == "torch":
        x = x.detach()
    return get_backend(backend).check_layer(model.layers[i], x, block_size=block_size)


def _moonwalk(backend: str, model, x, y, **options):
    return get_backend(backend).gradient(model, cross_entropy(backend), x, y,
                                         method=methods.Moonwalk(tolerance=1.0, **options))


def _backprop(backend: str, model, x, y):
    return get_backend(backend).gradient(model, cross_entropy(backend), x, y,
                                         method=methods.Backprop()).grads


@pytest.mark.parametrize("backend", BACKENDS)
def test_checker_catches_a_wrong_vijp(backend: str) -> None:
    model, x, y = _net(backend, "leaky_relu")
    ref = _backprop(backend, model, x, y)
    model, i = _swap(backend, model, "leaky_relu")
    assert _layer_errors(backend, model, i, x)["vijp"] > 1e-2
    result = _moonwalk(backend, model, x, y)
    assert grads_rel_error(result.grads, ref) > 1e-3
    assert result.self_check > RTOL["float64"]  # the free self-check sees it too


@pytest.mark.parametrize("backend", BACKENDS)
def test_checker_catches_a_dropped_fragment(backend: str) -> None:
    model, x, y = _net(backend, "relu")
    ref = _backprop(backend, model, x, y)
    model, i = _swap(backend, model, "relu")
    assert _layer_errors(backend, model, i, x)["vijp"] > 1e-2
    assert grads_rel_error(_moonwalk(backend, model, x, y).grads, ref) > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_checker_catches_stale_boundary_fragments(backend: str) -> None:
    model, x, y = _net(backend, "leaky_relu")
    ref = _backprop(backend, model, x, y)
    model, i = _swap(backend, model, "causal_conv1d")
    assert _layer_errors(backend, model, i, x, block_size=None)["vijp"] < RTOL["float64"]
    assert _layer_errors(backend, model, i, x, block_size=8)["vijp"] > 1e-3
    assert grads_rel_error(_moonwalk(backend, model, x, y, block_size=8).grads, ref) > 1e-3
