"""Public checker of the layer contract (``moonwalk_core.interface``) against JAX autodiff."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ._base import AbstractLayer
from ._containers import nbytes

__all__ = ["check_layer", "random_input"]


def _norm(a: Array) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64).reshape(-1)))


def _rel(a: Array, b: Array) -> float:
    ref = _norm(b)
    diff = float(np.linalg.norm((np.asarray(a, np.float64) - np.asarray(b, np.float64)).ravel()))
    return diff / ref if ref > 0 else diff


def random_input(shape: tuple[int, ...], *, dtype: str = "float64", seed: int = 0,
                 device: str | None = None) -> Array:
    """Standard-normal test input, the same numbers for every dtype, device and backend."""
    values = np.random.default_rng(seed).standard_normal(shape)
    x = jnp.asarray(values, dtype=dtype)
    return x if device is None else jax.device_put(x, jax.devices(device)[0])


def check_layer(layer: AbstractLayer, x_in: Array, *, block_size: int | None = None,
                seed: int = 0) -> dict[str, float]:
    """Measure each contract identity of ``layer`` at ``x_in``; 0 means exact.

    Returns relative errors keyed ``forward_with_residual``, ``vjp``, ``vjp_adjoint``, ``vijp``,
    ``param_vjp``; ``fragment_none`` (0 when ``fragment is None`` exactly for surjective layers,
    checked with ``block_size=None``, else 1) and ``residual_bytes`` (what Phase I keeps).
    The oracle is ``jax.vjp`` / ``jax.jvp`` on ``layer.forward``.
    """
    gen = np.random.default_rng(seed)

    def randn_like(t: Array) -> Array:
        return jnp.asarray(gen.standard_normal(t.shape), dtype=t.dtype)

    out: dict[str, float] = {}
    x_out, res = layer.forward_with_residual(x_in)
    out["forward_with_residual"] = _rel(x_out, layer(x_in))
    h_out, tangent = randn_like(x_out), randn_like(x_in)
    h_in = layer.vjp(res, h_out)
    _, pullback = jax.vjp(layer.forward, x_in)
    (h_ref,) = pullback(h_out)
    out["vjp"] = _rel(h_in, h_ref)
    _, jvp_out = jax.jvp(layer.forward, (x_in,), (tangent,))
    lhs = float(jnp.vdot(h_in, tangent))
    rhs = float(jnp.vdot(h_out, jvp_out))
    scale = _norm(h_in) * _norm(tangent)
    out["vjp_adjoint"] = abs(lhs - rhs) / scale if scale > 0 else abs(lhs - rhs)
    frag = layer.fragment(res, h_out, block_size=block_size)
    out["vijp"] = _rel(layer.vijp(x_in, h_in, frag), h_out)
    plain = layer.fragment(res, h_out, block_size=None)
    out["fragment_none"] = float((plain is None) != layer.surjective)
    grads = layer.param_vjp(x_in, h_out)
    params = layer.parameters()
    if params:
        def f(p: dict[str, Array]) -> Array:
            return layer.with_parameters(p).forward(x_in)

        _, param_pullback = jax.vjp(f, params)
        ref = param_pullback(h_out)[0]
        num = sum(_norm(grads[k] - ref[k]) ** 2 for k in ref) ** 0.5
        den = sum(_norm(ref[k]) ** 2 for k in ref) ** 0.5
        out["param_vjp"] = num / den if den > 0 else num
    else:
        out["param_vjp"] = float(bool(grads))
    out["residual_bytes"] = float(nbytes(res))
    return out
