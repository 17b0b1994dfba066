"""The JAX backend's public entry points: ``gradient`` and ``value_and_grad``.

Checks the inputs and, outside ``jit``, the weights (``check_weights``) and the storage plan;
then runs the method compiled (``eqx.filter_jit``, inlined when the caller is already tracing)
and judges the self-check (docs/method.md, 'Self-check'). The methods live in ``_reference``,
``_moonwalk``, ``_forward_modes`` and ``_revbackprop``; none of them imports this module.
``backward`` is torch-only: JAX has no ``.grad`` slots to fill; apply the returned gradients
with your optimizer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from .._accuracy import report_accuracy
from .._plan import LayerPlan
from .._validation import check_input_shape
from ..methods import (
    Backprop,
    Checkpointed,
    Method,
    Moonwalk,
    NaiveForward,
    PureForward,
    RevBackprop,
)
from ._forward_modes import naive_forward, pure_forward
from ._model import MoonwalkModel
from ._moonwalk import moonwalk
from ._phases import LossFn
from ._reference import backprop, checkpointed
from ._result import GradientResult
from ._revbackprop import rev_backprop
from ._stability import plan_storage

__all__ = ["gradient", "value_and_grad", "prepare", "run", "METHODS"]

METHODS: dict[type, Callable[..., GradientResult]] = {
    Backprop: backprop,
    Checkpointed: checkpointed,
    Moonwalk: moonwalk,
    PureForward: pure_forward,
    NaiveForward: naive_forward,
    RevBackprop: rev_backprop,
}


def _is_traced(*trees: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


def _check_inputs(model: Any, x: Array, y: Array) -> None:
    if not isinstance(model, MoonwalkModel):
        raise ValueError(f"model must be built by moonwalk_core.jax.build; got "
                         f"{type(model).__name__}")
    spec = model.spec
    check_input_shape(x.shape, spec.input_shape if spec is not None else None)
    if x.dtype != model.dtype:
        raise ValueError(f"x has dtype {x.dtype} but the model has {model.dtype}; "
                         f"convert one of them (x.astype(jnp.{model.dtype}) or "
                         "build(..., dtype=...))")
    del y


def prepare(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array, method: Method
            ) -> tuple[LayerPlan, ...] | None:
    """What runs before the compiled gradient, on concrete values: input checks, method check,
    weight checks (methods that run Phase III: Moonwalk, PureForward) and Moonwalk's storage
    plan (returned; None for other methods).

    Under an outer ``jit`` the weights are traced: the weight checks cannot run there (a
    singular tap then shows as a non-finite self-check), and ``checkpoint_every="auto"`` is
    refused.
    """
    del loss_fn
    _check_inputs(model, x, y)
    if type(method) not in METHODS:
        raise ValueError(f"method={method!r} is not supported by the jax backend; "
                         f"available: {[m.__name__ for m in METHODS]}")
    traced = _is_traced(model)
    if isinstance(method, Moonwalk | PureForward) and not traced:
        for layer in model:
            layer.check_weights()
    if not isinstance(method, Moonwalk):
        return None
    if method.checkpoint_every == "auto" and traced:
        raise ValueError("Moonwalk(checkpoint_every='auto') needs concrete weights to plan; "
                         "call gradient() outside jit (it compiles itself)")
    return tuple(plan_storage(model, method, x))


def run(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array, method: Method,
        plan: tuple[LayerPlan, ...] | None) -> GradientResult:
    """The method itself, pure (what :func:`gradient` compiles)."""
    if isinstance(method, Moonwalk):
        return moonwalk(model, loss_fn, x, y, method, list(plan) if plan is not None else None)
    return METHODS[type(method)](model, loss_fn, x, y, method)


_run_jit = eqx.filter_jit(run)


def gradient(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array, *,
             method: Method = Moonwalk()) -> GradientResult:
    """Loss, gradients and the method's own report (self-check, stored bytes, plan).

    Pure and ``jit``-compatible. Outside ``jit``, ``self_check`` is a float and a self-check
    above the tolerance warns (or raises with ``strict=True``), as in the torch backend;
    inside ``jit`` it is a scalar array and only ``strict=True`` raises (at run time).
    ``checkpoint_every="auto"`` reads the weights' condition numbers, so its plan is made
    outside ``jit`` (call ``gradient`` eagerly, or see :func:`compiled_memory`).
    """
    plan = prepare(model, loss_fn, x, y, method)
    result = _run_jit(model, loss_fn, x, y, method, plan)
    if "reconstruction_error" in result.info and not _is_traced(result.info):
        result.info["reconstruction_error"] = float(result.info["reconstruction_error"])
    if result.self_check is None:
        return result
    # PureForward reports a self-check too; it is judged with Moonwalk's default tolerance
    judge = method if isinstance(method, Moonwalk) else Moonwalk()
    dtype = str(jnp.dtype(model.dtype))
    if _is_traced(result.self_check):
        if judge.strict:  # under jit the check runs at run time (equinox's runtime errors)
            result.loss = eqx.error_if(result.loss,
                                       ~(result.self_check <= judge.tolerance_for(dtype)),
                                       "Moonwalk self-check above the tolerance (strict=True)")
        return result
    result.self_check = float(result.self_check)
    if "restart_checks" in result.info:
        result.info["restart_checks"] = {i: float(c) for i, c in
                                         result.info["restart_checks"].items()}
    nonfinite = [k for k, g in result.grads.items() if not bool(jnp.isfinite(g).all())]
    report_accuracy(judge, dtype, result.self_check, nonfinite)
    return result


def value_and_grad(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array, *,
                   method: Method = Moonwalk()) -> tuple[Array, dict[str, Array]]:
    """``(loss, grads)`` with ``grads`` keyed like ``named_parameters()``."""
    result = gradient(model, loss_fn, x, y, method=method)
    return result.loss, result.grads
