"""The JAX causal conv's hand-written fast paths equal what autodiff and the plain vijp give.

Phase III uses ``CausalConv1d.forward_and_param_vjp`` (a direct batched matmul, Note: [direct
parameter vjp]) and ``vijp(..., constants)`` with the W_0 inverse computed ahead for a whole run
(Note: [vijp constants]); both must agree with the definitions in float64.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import moonwalk_core.jax as mw
from moonwalk_core import arch
from moonwalk_core.jax._causal_conv import CausalConv1d, _causal_forward

from .helpers import RTOL, assert_rel_close


def _conv(dilation: int, channels: int = 5, k: int = 3, seed: int = 0) -> CausalConv1d:
    spec = arch.causal_conv_net(1, channels=channels, length=24, kernel_size=k,
                                dilation=dilation)
    model = mw.build(spec, seed=seed, dtype="float64")
    conv = model.layers[1]
    assert isinstance(conv, CausalConv1d)
    return conv


def _normal(seed: int, *shape: int) -> jax.Array:
    return jax.numpy.asarray(np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize(("dilation", "k"), [(1, 3), (2, 3), (1, 1), (3, 4)])
def test_direct_parameter_vjp_equals_jax_vjp(dilation: int, k: int) -> None:
    conv = _conv(dilation, k=k)
    x, h = _normal(1, 3, 5, 24), _normal(2, 3, 5, 24)
    x_out, grads = conv.forward_and_param_vjp(x, h)

    def f(weight: jax.Array, bias: jax.Array) -> jax.Array:
        return _causal_forward(x, weight, bias, dilation)

    ref_out, pullback = jax.vjp(f, conv.weight, conv.bias)
    ref_w, ref_b = pullback(h)
    assert_rel_close(x_out, ref_out, "float64", "forward")
    assert_rel_close(grads["weight"], ref_w, "float64", "weight gradient")
    assert_rel_close(grads["bias"], ref_b, "float64", "bias gradient")


@pytest.mark.parametrize("block_size", [None, 6, 8])
def test_vijp_with_precomputed_constants_inverts_the_vjp(block_size: int | None) -> None:
    conv = _conv(2)
    h_out = _normal(3, 2, 5, 24)
    h_in = conv.vjp(None, h_out)
    frag = conv.fragment(None, h_out, block_size=block_size)
    constants = jax.vmap(lambda layer: layer.vijp_constants())(
        jax.tree.map(lambda a: a[None], conv))
    constants = jax.tree.map(lambda a: a[0], constants)
    plain = conv.vijp(None, h_in, frag)
    ahead = conv.vijp(None, h_in, frag, constants)
    assert_rel_close(plain, h_out, "float64", "vijp")
    assert_rel_close(ahead, h_out, "float64", "vijp with constants")
    assert float(np.abs(np.asarray(plain) - np.asarray(ahead)).max()) < RTOL["float64"]


def test_stem_1d_direct_parameter_vjp_equals_jax_vjp() -> None:
    spec = arch.causal_conv_net(1, channels=5, in_channels=2, length=24)
    stem = mw.build(spec, seed=3, dtype="float64").layers[0]
    x, h = _normal(4, 3, 2, 24), _normal(5, 3, 5, 24)
    _, grads = stem.forward_and_param_vjp(x, h)
    _, pullback = jax.vjp(lambda w, b: _causal_forward(x, w, b, 1), stem.weight, stem.bias)
    ref_w, ref_b = pullback(h)
    assert_rel_close(grads["weight"], ref_w, "float64", "stem weight gradient")
    assert_rel_close(grads["bias"], ref_b, "float64", "stem bias gradient")
