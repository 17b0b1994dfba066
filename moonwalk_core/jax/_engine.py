"""Moonwalk's three phases (SPEC §1) and the public ``value_and_grad`` / ``gradient``.

Everything here is pure and ``jit``-compatible. ``gradient`` compiles the whole computation with
``eqx.filter_jit`` (inlined when the caller is already tracing). ``backward`` is torch-only:
JAX has no ``.grad`` slots to fill; apply the returned gradients with your optimizer.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array, lax

from ..methods import (
    DEFAULT_TOLERANCE,
    Backprop,
    Checkpointed,
    Method,
    Moonwalk,
    NaiveForward,
    PureForward,
    RevBackprop,
)
from ._base import AbstractLayer
from ._containers import FullFragment, nbytes
from ._forward_modes import naive_forward, pure_forward
from ._model import MoonwalkModel
from ._reference import backprop, checkpointed
from ._result import GradientResult, LayerPlan
from ._revbackprop import rev_backprop
from ._runs import Run, find_runs, scan_run, stack_run

__all__ = ["value_and_grad", "gradient", "plan_storage", "MoonwalkAccuracyWarning", "METHODS",
           "moonwalk"]

LossFn = Callable[[Array, Array], Array]


class MoonwalkAccuracyWarning(RuntimeWarning):
    """The self-check says the reconstructed cotangents are less accurate than the tolerance."""


def _loss_and_cotangent(loss_fn: LossFn, x_out: Array, y: Array) -> tuple[Array, Array]:
    """``(loss, dloss/dx_out)`` through the loss alone."""
    loss, pullback = jax.vjp(lambda z: loss_fn(z, y), x_out)
    if loss.ndim != 0:
        raise ValueError(f"loss_fn must return a scalar; it returned shape {tuple(loss.shape)}")
    (h,) = pullback(jnp.ones_like(loss))
    return loss, h


def plan_storage(model: MoonwalkModel, method: Moonwalk, x: Array) -> list[LayerPlan]:
    """Per-layer storage plan: block size and whether to keep a cotangent checkpoint."""
    if method.checkpoint_every == "auto":
        from ._stability import auto_plan

        return auto_plan(model, method, x)
    n, m = len(model), method.checkpoint_every
    # layer i (1-based) keeps h_i when i is a multiple of m; h_L is never worth keeping
    return [LayerPlan(method.block_size,
                      checkpoint=m is not None and (i + 1) % m == 0 and i + 1 < n,
                      reason="every m" if m is not None and (i + 1) % m == 0 else "")
            for i in range(n)]


Units = list[tuple[AbstractLayer, ...]]


def _forward_phase(units: Units, runs: list[Run], x0: Array) -> tuple[Array, list[Any]]:
    """Phase I: x_L and the input-vjp residuals of every layer (nothing else)."""
    residuals = []
    x = x0
    for unit, run in zip(units, runs, strict=True):  # one scan per run (see _runs.py)
        def body(x: Array, unit: tuple[AbstractLayer, ...]) -> tuple[Array, tuple[Any, ...]]:
            res = []
            for layer in unit:
                x, r = layer.forward_with_residual(x)
                x, r = lax.optimization_barrier((x, r))  # Note: [barriers between layers]
                res.append(r)
            return x, tuple(res)

        x, res = scan_run(body, x, unit, run)
        residuals.append(res)
    return x, residuals


def _reverse_phase(units: Units, runs: list[Run], residuals: list[Any], h_last: Array,
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
                elif unit_plan[j].negative_units:  # a leaky ReLU ("auto" chose it)
                    frags[j] = unit[j].negative_units_fragment(res[j], h)
                else:
                    frags[j] = unit[j].fragment(res[j], h, block_size=unit_plan[j].block_size)
                h = unit[j].vjp(res[j], h)
                h = lax.optimization_barrier(h)  # Note: [barriers between layers]
            return h, tuple(frags)

        h, fragments[k] = scan_run(body, h, (units[k], residuals.pop()), runs[k],
                                   reverse=True)
    return h, fragments


def _inverse_forward_phase(units: Units, runs: list[Run], x0: Array, h0: Array,
                           fragments: list[Any], restart_checks: dict[int, Array] | None = None
                           ) -> tuple[dict[str, Array], Array, Array]:
    """Phase III: recompute x_i, recover h_i by vijp, take h_i · J_theta at x_{i-1}.

    Returns the gradients, x_L and the reconstructed h_L (for the self-check). At each layer
    whose full output cotangent was stored, ``restart_checks[i]`` receives the relative error
    of the reconstructed h_{i-1} against vjp(stored h_i): the self-check of the segment that
    ends there (Note: [self-check at restarts]).

    # Note: [optimization barrier]
    Phase III recomputes x_1 from x_0 exactly as Phase I did; XLA would merge the two (CSE)
    and keep x_1 alive through Phase II. The barrier hides that x_0 is Phase I's input.
    """
    grads: dict[str, Array] = {}
    x, h = lax.optimization_barrier((x0, h0))
    for k, (unit, run) in enumerate(zip(units, runs, strict=True)):
        frag, fragments[k] = fragments[k], None  # free the fragments as soon as they are used

        # Note: [vijp constants] one batched call per run, outside the scan
        consts = tuple(jax.vmap(lambda layer: layer.vijp_constants())(layer)
                       if _has_vijp_constants(layer) and not isinstance(f, FullFragment)
                       else None for layer, f in zip(unit, frag, strict=True))

        def body(carry: tuple[Array, Array], xs: tuple[Any, Any, Any], start: int = run.start
                 ) -> tuple[tuple[Array, Array], tuple[Any, ...]]:
            (x, h), (unit, frags, consts) = carry, xs
            unit_grads, checks = [], []
            for j, layer in enumerate(unit):
                check = None
                if isinstance(frags[j], FullFragment) and start + j > 0:
                    # Note: [self-check at restarts] a checkpoint hides the error accumulated
                    # before it from the final self-check; the vjp of the stored h_i measures it.
                    _, res = layer.forward_with_residual(x)
                    check = _relative_error(h, layer.vjp(res, frags[j].h_out))
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


def _has_vijp_constants(layer: AbstractLayer) -> bool:
    return type(layer).vijp_constants is not AbstractLayer.vijp_constants


def _relative_error(a: Array, b: Array) -> Array:
    ref = jnp.linalg.norm(b.reshape(-1))
    diff = jnp.linalg.norm((a - b).reshape(-1))
    return jnp.where(ref > 0, diff / jnp.where(ref > 0, ref, 1), diff)


def _tolerance(model: MoonwalkModel, method: Moonwalk) -> tuple[str, float]:
    dtype = str(jnp.dtype(model.dtype))
    return dtype, method.tolerance or DEFAULT_TOLERANCE.get(dtype, 1e-4)


def _accuracy_message(model: MoonwalkModel, method: Moonwalk, self_check: float,
                      grads: dict[str, Any]) -> str | None:
    dtype, tol = _tolerance(model, method)
    bad = [k for k, g in grads.items() if not bool(jnp.isfinite(g).all())]
    if bad or not math.isfinite(self_check):
        return (f"Moonwalk produced non-finite values (self-check {self_check}, non-finite "
                f"gradients: {bad[:5]}); the inverse-forward sweep diverged. Use "
                "checkpoint_every='auto', a smaller block_size, a larger leaky-ReLU slope, "
                "well-conditioned weights (init='orthogonal') or float64.")
    if self_check > tol:
        return (f"Moonwalk self-check: reconstructed cotangents are off by {self_check:.2e} "
                f"relative, {self_check / tol:.1e}x the tolerance {tol:.0e} for {dtype}; "
                "gradients may be inaccurate. Use checkpoint_every='auto' (or a smaller int), "
                "a smaller block_size, a larger leaky-ReLU slope or float64.")
    return None


def _with_packing(model: MoonwalkModel, packed: bool) -> MoonwalkModel:
    layers = tuple(layer.replace_static(pack_residuals=packed) for layer in model)
    return eqx.tree_at(lambda m: m.layers, model, layers)


def moonwalk(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array, method: Moonwalk,
             plan: list[LayerPlan] | None = None) -> GradientResult:
    """Mixed-mode Moonwalk: Phase I, II and III, pure (SPEC §1)."""
    model = _with_packing(model, method.pack_residuals)  # only activations read it
    plan = plan_storage(model, method, x) if plan is None else plan
    runs = find_runs(model.layers, plan, x)
    units = [stack_run(model.layers, run) for run in runs]
    x_last, residuals = _forward_phase(units, runs, x)
    residual_bytes = nbytes(residuals)
    loss, h_last = _loss_and_cotangent(loss_fn, x_last, y)
    del x_last  # Phase III recomputes it
    h0, fragments = _reverse_phase(units, runs, residuals, h_last, plan)
    del h_last  # only the reconstruction of Phase III may be compared with it
    checkpoint_bytes = sum(nbytes(frags[j]) for frags, run in zip(fragments, runs, strict=True)
                           for j in range(run.unit) if plan[run.start + j].checkpoint)
    fragment_bytes = nbytes(fragments) - checkpoint_bytes
    restart_checks: dict[int, Array] = {}
    grads, x_last, h_last = _inverse_forward_phase(units, runs, x, h0, fragments, restart_checks)
    _, h_true = _loss_and_cotangent(loss_fn, x_last, y)
    # the largest error of any segment between two restarts (SPEC §1 'Free self-check');
    # jnp.max propagates NaN, so a diverged segment shows
    self_check = jnp.max(jnp.stack([_relative_error(h_last, h_true), *restart_checks.values()]))
    stored = {"input": nbytes(x), "residuals": residual_bytes, "fragments": fragment_bytes,
              "checkpoints": checkpoint_bytes}
    stored["total"] = sum(stored.values())
    return GradientResult(loss, grads, self_check, stored, list(plan),
                          info={"restart_checks": restart_checks})


METHODS: dict[type, Callable[..., GradientResult]] = {
    Backprop: backprop,
    Checkpointed: checkpointed,
    Moonwalk: moonwalk,
    PureForward: pure_forward,
    NaiveForward: naive_forward,
    RevBackprop: rev_backprop,
}


def _check_inputs(model: Any, x: Array, y: Array) -> None:
    if not isinstance(model, MoonwalkModel):
        raise ValueError(f"model must be built by moonwalk_core.jax.build; got "
                         f"{type(model).__name__}")
    spec = model.spec
    if spec is not None and tuple(x.shape[1:]) != tuple(spec.input_shape):
        raise ValueError(f"x has shape {tuple(x.shape)}; the model expects "
                         f"(batch, {', '.join(map(str, spec.input_shape))})")
    if x.dtype != model.dtype:
        raise ValueError(f"x has dtype {x.dtype} but the model has {model.dtype}; "
                         f"convert one of them (x.astype(jnp.{model.dtype}) or "
                         "build(..., dtype=...))")
    del y


def _run(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array, method: Method,
         plan: tuple[LayerPlan, ...] | None) -> GradientResult:
    if isinstance(method, Moonwalk):
        return moonwalk(model, loss_fn, x, y, method, list(plan) if plan is not None else None)
    return METHODS[type(method)](model, loss_fn, x, y, method)


_run_jit = eqx.filter_jit(_run)


def _is_traced(*trees: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


def gradient(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array, *,
             method: Method = Moonwalk()) -> GradientResult:
    """Loss, gradients and the method's own report (self-check, stored bytes, plan).

    Pure and ``jit``-compatible. Outside ``jit``, ``self_check`` is a float and a self-check
    above the tolerance warns (or raises with ``strict=True``), as in the torch backend;
    inside ``jit`` it is a scalar array and only ``strict=True`` raises (at run time).
    ``checkpoint_every="auto"`` reads the weights' condition numbers, so its plan is made
    outside ``jit`` (call ``gradient`` eagerly, or see :func:`compiled_memory`).
    """
    _check_inputs(model, x, y)
    if type(method) not in METHODS:
        raise ValueError(f"method={method!r} is not supported by the jax backend; "
                         f"available: {[m.__name__ for m in METHODS]}")
    plan = None
    if isinstance(method, Moonwalk):
        if method.checkpoint_every == "auto" and _is_traced(model):
            raise ValueError("Moonwalk(checkpoint_every='auto') needs concrete weights to plan; "
                             "call gradient() outside jit (it compiles itself)")
        plan = tuple(plan_storage(model, method, x))
    result = _run_jit(model, loss_fn, x, y, method, plan)
    if "reconstruction_error" in result.info and not _is_traced(result.info):
        result.info["reconstruction_error"] = float(result.info["reconstruction_error"])
    if result.self_check is None:
        return result
    # PureForward reports a self-check too; it is judged with Moonwalk's default tolerance
    method = method if isinstance(method, Moonwalk) else Moonwalk()
    if _is_traced(result.self_check):
        if method.strict:  # under jit the check runs at run time (equinox's runtime errors)
            _, tol = _tolerance(model, method)
            result.loss = eqx.error_if(result.loss, ~(result.self_check <= tol),
                                       "Moonwalk self-check above the tolerance (strict=True)")
        return result
    result.self_check = float(result.self_check)
    if "restart_checks" in result.info:
        result.info["restart_checks"] = {i: float(c) for i, c in
                                         result.info["restart_checks"].items()}
    msg = _accuracy_message(model, method, result.self_check, result.grads)
    if msg is not None:
        if method.strict:
            raise FloatingPointError(msg)
        warnings.warn(msg, MoonwalkAccuracyWarning, stacklevel=2)
    return result


def value_and_grad(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array, *,
                   method: Method = Moonwalk()) -> tuple[Array, dict[str, Array]]:
    """``(loss, grads)`` with ``grads`` keyed like ``named_parameters()`` (SPEC §7)."""
    result = gradient(model, loss_fn, x, y, method=method)
    return result.loss, result.grads
