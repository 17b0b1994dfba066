"""Public checker of the layer contract (:mod:`moonwalk_core.interface`) against JAX's own
autodiff."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ._base import AbstractLayer
from ._containers import nbytes

__all__ = ["check_layer", "random_input"]


def _norm(a: Any) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64).reshape(-1)))


def _rel(a: Any, b: Any) -> float:
    ref = _norm(b)
    diff = float(np.linalg.norm((np.asarray(a, np.float64) - np.asarray(b, np.float64)).ravel()))
    return diff / ref if ref > 0 else diff


def _inner_product_error(lhs: Any, rhs: Any, scale: float) -> float:
    """``|lhs - rhs| / scale`` (scale: a Cauchy-Schwarz bound on |rhs|)."""
    diff = abs(float(lhs) - float(rhs))
    return diff / scale if scale > 0 else diff


def random_input(shape: tuple[int, ...], *, dtype: str = "float64", seed: int = 0,
                 device: str | None = None) -> Array:
    """Standard-normal test input, the same numbers for every dtype, device and backend."""
    values = np.random.default_rng(seed).standard_normal(shape)
    x = jnp.asarray(values, dtype=dtype)
    return x if device is None else jax.device_put(x, jax.devices(device)[0])


def _unnamed_arrays(layer: AbstractLayer) -> int:
    """How many floating-point arrays of the layer ``param_names`` leaves out (or names twice):
    0 when ``parameters()`` is exactly the layer's parameters."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(layer, eqx.is_inexact_array))
    named = list(layer.parameters().values())
    return abs(len(leaves) - len(named)) + len({id(a) for a in leaves} ^ {id(a) for a in named})


def check_layer(layer: AbstractLayer, x_in: Array, *, block_size: int | None = None,
                seed: int = 0, reference: Callable[[Array], Any] | None = None
                ) -> dict[str, float]:
    """Measure each contract identity of ``layer`` at ``x_in``; 0 means exact.

    Returns:
        Relative errors keyed ``forward_with_residual`` (identity 1: ``forward`` and
        ``forward_with_residual`` against ``reference``, an independent implementation of the
        forward; without one, only against each other), ``vjp`` (against ``jax.vjp`` of the
        forward), ``vjp_adjoint`` (<vjp(h), t> = <h, jvp(t)>), ``vijp`` (at ``block_size``),
        ``param_vjp`` (the largest, over parameters, of |<param_vjp(h), δθ> - <h, J_θ δθ>| /
        (‖h‖ ‖J_θ δθ‖) with ``jax.jvp`` for J_θ δθ: independent of how the layer computes its
        gradient); ``param_names`` (0 when ``param_vjp`` returns exactly the layer's
        parameters and ``param_names`` covers every floating-point array of the layer, else
        > 0); ``fragment_none`` (0 when ``fragment is None`` exactly for surjective layers,
        checked with ``block_size=None``, else 1) and ``residual_bytes`` (what Phase I keeps).
    """
    gen = np.random.default_rng(seed)

    def randn_like(t: Any) -> Array:
        return jnp.asarray(gen.standard_normal(t.shape), dtype=t.dtype)

    x_out_shape = jax.eval_shape(layer.forward, x_in)
    h_out = randn_like(x_out_shape)
    tangent = randn_like(x_in)
    deltas = {k: randn_like(p) for k, p in sorted(layer.parameters().items())}
    m = _measure(layer, x_in, h_out, tangent, deltas)
    recovered = _recover(layer, x_in, h_out, block_size)
    expected = m["forward"] if reference is None else reference(x_in)
    out: dict[str, float] = {
        "forward_with_residual": max(_rel(m["x_out"], expected), _rel(m["forward"], expected)),
        "vjp": _rel(m["h_in"], m["h_ref"])}
    out["vjp_adjoint"] = _inner_product_error(m["lhs"], m["rhs"],
                                              _norm(m["h_in"]) * _norm(tangent))
    out["vijp"] = _rel(recovered, h_out)
    out["fragment_none"] = float(m["plain_is_none"] != layer.surjective)
    grads = m["grads"]
    out["param_names"] = float(set(grads) != set(deltas)) + _unnamed_arrays(layer)
    out["param_vjp"] = 0.0
    for name in sorted(set(grads) & set(deltas)):
        lhs = float(jnp.vdot(grads[name], deltas[name]))
        scale = _norm(h_out) * _norm(m["j_deltas"][name])
        out["param_vjp"] = max(out["param_vjp"],
                               _inner_product_error(lhs, m["param_rhs"][name], scale))
    out["residual_bytes"] = float(m["residual_bytes"])
    return out


@eqx.filter_jit
def _recover(layer: AbstractLayer, x_in: Array, h_out: Array, block_size: int | None) -> Array:
    """``vijp(x_in, vjp(res, h_out), fragment(res, h_out))``: the one part that depends on the
    block size, compiled per block size."""
    _, res = layer.forward_with_residual(x_in)
    frag = layer.fragment(res, h_out, block_size=block_size)
    return layer.vijp(x_in, layer.vjp(res, h_out), frag)


@eqx.filter_jit
def _measure(layer: AbstractLayer, x_in: Array, h_out: Array, tangent: Array,
             deltas: dict[str, Array]) -> dict[str, Any]:
    """Everything else check_layer compares, in one compiled call (eager JAX would compile
    every primitive of every case separately, which dominated the contract suite's time)."""
    x_out, res = layer.forward_with_residual(x_in)
    h_in = layer.vjp(res, h_out)
    _, pullback = jax.vjp(layer.forward, x_in)
    (h_ref,) = pullback(h_out)
    _, jvp_out = jax.jvp(layer.forward, (x_in,), (tangent,))
    plain = layer.fragment(res, h_out, block_size=None)
    params = layer.parameters()
    names = sorted(deltas)
    j_deltas, param_rhs = {}, {}
    if names:
        # one tangent per parameter (the others zero), all through one vmapped jvp
        tangents = {k: jnp.stack([deltas[k] if j == i else jnp.zeros_like(deltas[k])
                                  for i in range(len(names))]) for j, k in enumerate(names)}

        def j_theta(tangent: dict[str, Array]) -> Array:
            def f(p: dict[str, Array]) -> Array:
                return layer.with_parameters({**params, **p}).forward(x_in)

            return jax.jvp(f, ({k: params[k] for k in names},), (tangent,))[1]

        outs = jax.vmap(j_theta)(tangents)
        j_deltas = {k: outs[i] for i, k in enumerate(names)}
        param_rhs = {k: jnp.vdot(h_out, j_deltas[k]) for k in names}
    return {"x_out": x_out, "forward": layer(x_in), "h_in": h_in, "h_ref": h_ref,
            "lhs": jnp.vdot(h_in, tangent), "rhs": jnp.vdot(h_out, jvp_out),
            "plain_is_none": plain is None, "grads": layer.param_vjp(x_in, h_out),
            "j_deltas": j_deltas, "param_rhs": param_rhs, "residual_bytes": nbytes(res)}
