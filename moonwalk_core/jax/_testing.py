"""Public checker of the layer contract (``moonwalk_core.interface``) against JAX autodiff."""

from __future__ import annotations

from typing import Any

import equinox as eqx
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

    def randn_like(t: Any) -> Array:
        return jnp.asarray(gen.standard_normal(t.shape), dtype=t.dtype)

    x_out_shape = jax.eval_shape(layer.forward, x_in)
    h_out = randn_like(x_out_shape)
    tangent = randn_like(x_in)
    m = _measure(layer, x_in, h_out, tangent)
    m["recovered"] = _recover(layer, x_in, h_out, block_size)
    out: dict[str, float] = {"forward_with_residual": _rel(m["x_out"], m["forward"]),
                             "vjp": _rel(m["h_in"], m["h_ref"])}
    lhs, rhs = float(m["lhs"]), float(m["rhs"])
    scale = _norm(m["h_in"]) * _norm(tangent)
    out["vjp_adjoint"] = abs(lhs - rhs) / scale if scale > 0 else abs(lhs - rhs)
    out["vijp"] = _rel(m["recovered"], h_out)
    out["fragment_none"] = float(m["plain_is_none"] != layer.surjective)
    grads, ref = m["grads"], m["ref"]
    if ref:
        num = sum(_norm(grads[k] - ref[k]) ** 2 for k in ref) ** 0.5
        den = sum(_norm(ref[k]) ** 2 for k in ref) ** 0.5
        out["param_vjp"] = num / den if den > 0 else num
    else:
        out["param_vjp"] = float(bool(grads))
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
def _measure(layer: AbstractLayer, x_in: Array, h_out: Array, tangent: Array
             ) -> dict[str, Any]:
    """Everything else check_layer compares, in one compiled call (eager JAX would compile
    every primitive of every case separately, which dominated the contract suite's time)."""
    x_out, res = layer.forward_with_residual(x_in)
    h_in = layer.vjp(res, h_out)
    _, pullback = jax.vjp(layer.forward, x_in)
    (h_ref,) = pullback(h_out)
    _, jvp_out = jax.jvp(layer.forward, (x_in,), (tangent,))
    plain = layer.fragment(res, h_out, block_size=None)
    params = layer.parameters()
    ref: dict[str, Array] = {}
    if params:
        def f(p: dict[str, Array]) -> Array:
            return layer.with_parameters(p).forward(x_in)

        ref = jax.vjp(f, params)[1](h_out)[0]
    return {"x_out": x_out, "forward": layer(x_in), "h_in": h_in, "h_ref": h_ref,
            "lhs": jnp.vdot(h_in, tangent), "rhs": jnp.vdot(h_out, jvp_out),
            "plain_is_none": plain is None,
            "grads": layer.param_vjp(x_in, h_out), "ref": ref, "residual_bytes": nbytes(res)}
