"""Moonwalk's three phases over a JAX model (docs/method.md), and what they share with the other
methods: the loss's own cotangent and the relative error.

Everything here is pure and ``jit``-compatible. Each phase is one ``lax.scan`` per run of
identical layers (``_runs.py``, Note: [why scan over layers]). Nothing here dispatches on
methods; the methods (``_moonwalk``, ``_forward_modes``, ``_revbackprop``) call these
functions, and ``_api`` dispatches to the methods.

# Note: [barriers between layers]
``lax.optimization_barrier`` on each layer's output (Phase I and III) and cotangent (Phase II,
and the vijp's h_out in Phase III) keeps XLA from moving work across the layer boundary: each
layer's step is scheduled on its own, in order, instead of XLA fusing and reordering across the
whole unrolled unit. Measured on the 16-layer causal-conv benchmark net (C=64, T=1024, batch 8,
float32, CPU; two runs on a shared machine): the sequential solve 0.56 s and 0.92 s with the
barriers against 0.97 s and 1.74 s with every barrier removed, block size 128 unchanged within
noise, and XLA's temp bytes 24.7 MiB against 26.7 MiB.

# Note: [optimization barrier]
Phase III recomputes x_1 from x_0 exactly as Phase I did; XLA would merge the two (CSE) and keep
x_1 alive through Phase II. A barrier on Phase III's inputs hides that x_0 is Phase I's input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array, lax

from .._plan import LayerPlan
from ._base import AbstractLayer
from ._containers import FullFragment
from ._runs import Run, scan_run

__all__ = ["LossFn", "Units", "loss_and_cotangent", "relative_error", "forward_phase",
           "reverse_phase", "inverse_forward_phase"]

LossFn = Callable[[Array, Array], Array]
Units = list[tuple[AbstractLayer, ...]]


def loss_and_cotangent(loss_fn: LossFn, x_out: Array, y: Array) -> tuple[Array, Array]:
    """``(loss, dloss/dx_out)`` through the loss alone."""
    loss, pullback = jax.vjp(lambda z: loss_fn(z, y), x_out)
    if loss.ndim != 0:
        raise ValueError(f"loss_fn must return a scalar; it returned shape {tuple(loss.shape)}")
    (h,) = pullback(jnp.ones_like(loss))
    return loss, h


def relative_error(a: Array, b: Array) -> Array:
    """``‖a - b‖ / ‖b‖`` (``‖a - b‖`` when b = 0), a scalar array."""
    # bfloat16 norms lose digits: float32 for them (spelled out: the package runs JAX with
    # strict dtype promotion, which has no float64-float32 rule)
    work = jnp.float32 if b.dtype == jnp.bfloat16 else b.dtype
    a, b = a.astype(work), b.astype(work)
    ref = jnp.linalg.norm(b.reshape(-1))
    diff = jnp.linalg.norm((a - b).reshape(-1))
    return jnp.where(ref > 0, diff / jnp.where(ref > 0, ref, 1), diff)


def forward_phase(units: Units, runs: list[Run], x0: Array, *, pack_residuals: bool = True
                  ) -> tuple[Array, list[Any]]:
    """Phase I: x_L and the input-vjp residuals of every layer (nothing else)."""
    residuals = []
    x = x0
    for unit, run in zip(units, runs, strict=True):  # one scan per run (see _runs.py)
        def body(x: Array, unit: tuple[AbstractLayer, ...]) -> tuple[Array, tuple[Any, ...]]:
            res = []
            for layer in unit:
                x, r = layer.forward_with_residual(x, pack_residuals=pack_residuals)
                x, r = lax.optimization_barrier((x, r))  # Note: [barriers between layers]
                res.append(r)
            return x, tuple(res)

        x, res = scan_run(body, x, unit, run)
        residuals.append(res)
    return x, residuals


def reverse_phase(units: Units, runs: list[Run], residuals: list[Any], h_last: Array,
                  plan: list[LayerPlan]) -> tuple[Array, list[Any]]:
    """Phase II: h_0 and the fragments, by input vjps only; each h_i dropped once used."""
    fragments: list[Any] = [None] * len(units)
    h = h_last
    for k in range(len(units) - 1, -1, -1):
        unit_plan = plan[runs[k].start:runs[k].start + runs[k].unit]

        def body(h: Array, xs: tuple[Any, Any], unit_plan: list[LayerPlan] = unit_plan
                 ) -> tuple[Array, tuple[Any, ...]]:
            unit, res = xs
            frags: list[Any] = [None] * len(unit)
            for j in range(len(unit) - 1, -1, -1):
                if unit_plan[j].checkpoint:
                    frags[j] = FullFragment(h)
                elif unit_plan[j].negative_units:  # the plan only asks layers that offer it
                    frags[j] = unit[j].negative_units_fragment(res[j], h)
                else:
                    frags[j] = unit[j].fragment(res[j], h, block_size=unit_plan[j].block_size)
                h = unit[j].vjp(res[j], h)
                h = lax.optimization_barrier(h)  # Note: [barriers between layers]
            return h, tuple(frags)

        h, fragments[k] = scan_run(body, h, (units[k], residuals.pop()), runs[k],
                                   reverse=True)
    return h, fragments


def _constants(layer: Any, frag: Any, length: int, solver: str) -> Any:
    """A stacked layer's vijp constants for the whole run (vmapped), or None."""
    if not layer.has_vijp_constants or isinstance(frag, FullFragment):
        return None
    if solver == "fft" and layer.block_axis == "time":
        steps = layer.filter_steps(length, frag)
        if steps:
            return jax.vmap(lambda one: one.fft_constants(steps))(layer)
    return jax.vmap(lambda one: one.vijp_constants())(layer)


def inverse_forward_phase(units: Units, runs: list[Run], x0: Array, h0: Array,
                          fragments: list[Any], restart_checks: dict[int, Array] | None = None,
                          solver: str = "substitution"
                          ) -> tuple[dict[str, Array], Array, Array]:
    """Phase III: recompute x_i, recover h_i by vijp, take h_i · J_theta at x_{i-1}.

    Returns the gradients, x_L and the reconstructed h_L (for the self-check). At each layer
    whose full output cotangent was stored, ``restart_checks[i]`` receives the relative error
    of the reconstructed h_{i-1} against vjp(stored h_i): the self-check of the segment that
    ends there (Note: [self-check at restarts] in :mod:`moonwalk_core._accuracy`).
    """
    grads: dict[str, Array] = {}
    x, h = lax.optimization_barrier((x0, h0))  # Note: [optimization barrier]
    for k, (unit, run) in enumerate(zip(units, runs, strict=True)):
        frag, fragments[k] = fragments[k], None  # free the fragments as soon as they are used

        # Note: [vijp constants] one batched call per run, outside the scan; the FFT solver's
        # inverse filters for causal convs (their input length is the run's: convs keep it)
        consts = tuple(_constants(layer, f, x.shape[-1], solver)
                       for layer, f in zip(unit, frag, strict=True))

        def body(carry: tuple[Array, Array], xs: tuple[Any, Any, Any], start: int = run.start
                 ) -> tuple[tuple[Array, Array], tuple[Any, ...]]:
            (x, h), (unit, frags, consts) = carry, xs
            unit_grads, checks = [], []
            for j, layer in enumerate(unit):
                check = None
                if isinstance(frags[j], FullFragment) and start + j > 0:
                    # Note: [self-check at restarts] (moonwalk_core/_accuracy.py)
                    _, res = layer.forward_with_residual(x)
                    check = relative_error(h, layer.vjp(res, frags[j].h_out))
                checks.append(check)
                h = lax.optimization_barrier(layer.vijp(x, h, frags[j], consts[j]))
                x, layer_grads = layer.forward_and_param_vjp(x, h)
                x = lax.optimization_barrier(x)  # Note: [barriers between layers]
                unit_grads.append(layer_grads)
            return (x, h), (tuple(unit_grads), tuple(checks))

        (x, h), (stacked, checks) = scan_run(body, (x, h), (unit, frag, consts), run)
        for r in range(run.repeats):
            for j, layer_grads in enumerate(stacked):
                i = run.start + r * run.unit + j
                grads.update({f"layers.{i}.{name}": g[r] for name, g in layer_grads.items()})
                if checks[j] is not None and restart_checks is not None:
                    restart_checks[i] = checks[j][r]
    return grads, x, h
