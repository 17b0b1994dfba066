"""Moonwalk's three phases (SPEC §1) and the public ``value_and_grad`` / ``backward``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

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
from ._containers import FullFragment, nbytes
from ._forward_modes import naive_forward, pure_forward
from ._model import MoonwalkModel
from ._reference import backprop, checkpointed
from ._result import GradientResult, LayerPlan
from ._revbackprop import rev_backprop
from ._workspace import scratch

__all__ = ["value_and_grad", "gradient", "backward", "plan_storage", "MoonwalkAccuracyWarning",
           "METHODS"]

LossFn = Callable[[Tensor, Tensor], Tensor]


class MoonwalkAccuracyWarning(RuntimeWarning):
    """The self-check says the reconstructed cotangents are less accurate than the tolerance."""


def _loss_and_cotangent(loss_fn: LossFn, x_out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(loss, dloss/dx_out)`` through the loss alone."""
    loss, pullback = torch.func.vjp(lambda z: loss_fn(z, y), x_out)
    if loss.ndim != 0:
        raise ValueError(f"loss_fn must return a scalar; it returned shape {tuple(loss.shape)}")
    (h,) = pullback(torch.ones_like(loss))
    return loss.detach(), h


def plan_storage(model: MoonwalkModel, method: Moonwalk, x: Tensor) -> list[LayerPlan]:
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


def _forward_phase(model: MoonwalkModel, x0: Tensor) -> tuple[Tensor, list[Any]]:
    """Phase I: x_L and the input-vjp residuals of every layer (nothing else)."""
    residuals = []
    x = x0
    for layer in model:
        x, res = layer.forward_with_residual(x)
        residuals.append(res)
    return x, residuals


def _reverse_phase(model: MoonwalkModel, residuals: list[Any], h_last: Tensor,
                   plan: list[LayerPlan]) -> tuple[Tensor, list[Any]]:
    """Phase II: h_0 and the fragments, by input vjps only; each h_i dropped once used."""
    fragments: list[Any] = [None] * len(model)
    h = h_last
    for i in range(len(model) - 1, -1, -1):
        layer, res = model.layers[i], residuals.pop()
        if plan[i].checkpoint:
            fragments[i] = FullFragment(h)
        elif plan[i].negative_units:  # a leaky ReLU (checkpoint_every="auto" chose it)
            fragments[i] = layer.negative_units_fragment(res, h)
        else:
            fragments[i] = layer.fragment(res, h, block_size=plan[i].block_size)
        h = layer.vjp(res, h)
        del res  # the residual's only use was this vjp
    return h, fragments


def _inverse_forward_phase(model: MoonwalkModel, x0: Tensor, h0: Tensor, fragments: list[Any],
                           restart_checks: dict[int, float] | None = None
                           ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Phase III: recompute x_i, recover h_i by vijp, take h_i · J_theta at x_{i-1}.

    Returns the gradients, x_L and the reconstructed h_L (for the self-check). At each layer
    whose full output cotangent was stored, ``restart_checks[i]`` receives the relative error
    of the reconstructed h_{i-1} against vjp(stored h_i): the self-check of the segment that
    ends there (Note: [self-check at restarts]).
    """
    grads: dict[str, Tensor] = {}
    x, h = x0, h0
    for i, layer in enumerate(model):
        frag, fragments[i] = fragments[i], None  # free the fragment as soon as it is used
        if restart_checks is not None and i > 0 and isinstance(frag, FullFragment):
            # Note: [self-check at restarts] a checkpoint hides the error accumulated before
            # it from the final self-check; the (stable) vjp of the stored h_i measures it.
            _, res = layer.forward_with_residual(x)
            restart_checks[i] = _relative_error(h, layer.vjp(res, frag.h_out))
            del res
        h = layer.vijp(x, h, frag)
        x, layer_grads = layer.forward_and_param_vjp(x, h)
        grads.update({f"layers.{i}.{k}": g for k, g in layer_grads.items()})
    return grads, x, h


def _relative_error(a: Tensor, b: Tensor) -> float:
    ref = float(torch.linalg.vector_norm(b))
    diff = float(torch.linalg.vector_norm(a - b))
    return diff / ref if ref > 0 else diff


def _report_accuracy(model: MoonwalkModel, method: Moonwalk, self_check: float,
                     grads: dict[str, Tensor]) -> None:
    dtype = str(model.dtype).removeprefix("torch.")
    tol = method.tolerance or DEFAULT_TOLERANCE.get(dtype, 1e-4)
    bad = [k for k, g in grads.items() if not torch.isfinite(g).all()]
    if bad or not math.isfinite(self_check):
        msg = (f"Moonwalk produced non-finite values (self-check {self_check}, non-finite "
               f"gradients: {bad[:5]}); the inverse-forward sweep diverged. Use "
               "checkpoint_every='auto', a smaller block_size, a larger leaky-ReLU slope, "
               "well-conditioned weights (init='orthogonal') or float64.")
    elif self_check > tol:
        msg = (f"Moonwalk self-check: reconstructed cotangents are off by {self_check:.2e} "
               f"relative, {self_check / tol:.1e}x the tolerance {tol:.0e} for {dtype}; gradients "
               "may be inaccurate. Use checkpoint_every='auto' (or a smaller int), a smaller "
               "block_size, a larger leaky-ReLU slope or float64.")
    else:
        return
    if method.strict:
        raise FloatingPointError(msg)
    warnings.warn(msg, MoonwalkAccuracyWarning, stacklevel=4)


def moonwalk(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor,
             method: Moonwalk) -> GradientResult:
    """Mixed-mode Moonwalk: Phase I, II and III under ``no_grad`` (SPEC §1)."""
    for layer in model:
        layer.pack_residuals = method.pack_residuals  # only activations read it
    plan = plan_storage(model, method, x)
    halos = {layer.input_halo for layer in model} - {0}
    # one padding shared by every causal conv: activations carry it (Note: [scratch buffers]);
    # Phase II needs no buffers, so Phase I's are freed before it
    halo = halos.pop() if len(halos) == 1 else 0
    with torch.no_grad():
        with scratch(halo):
            x_last, residuals = _forward_phase(model, x)
        residual_bytes = nbytes(residuals)
        loss, h_last = _loss_and_cotangent(loss_fn, x_last, y)
        del x_last  # Phase III recomputes it
        h0, fragments = _reverse_phase(model, residuals, h_last, plan)
        del h_last  # only the reconstruction of Phase III may be compared with it
        checkpoint_bytes = sum(nbytes(f) for f, p in zip(fragments, plan, strict=True)
                               if p.checkpoint)
        fragment_bytes = nbytes(fragments) - checkpoint_bytes
        restart_checks: dict[int, float] = {}
        with scratch(halo):
            grads, x_last, h_last = _inverse_forward_phase(model, x, h0, fragments,
                                                           restart_checks)
        _, h_true = _loss_and_cotangent(loss_fn, x_last, y)
        # the largest error of any segment between two restarts (SPEC §1 'Free self-check')
        checks = [_relative_error(h_last, h_true), *restart_checks.values()]
        self_check = next((c for c in checks if not math.isfinite(c)), max(checks))
    _report_accuracy(model, method, self_check, grads)
    stored = {"input": nbytes(x), "residuals": residual_bytes, "fragments": fragment_bytes,
              "checkpoints": checkpoint_bytes}
    stored["total"] = sum(stored.values())
    return GradientResult(loss, grads, self_check, stored, plan,
                          info={"restart_checks": restart_checks})


METHODS: dict[type, Callable[..., GradientResult]] = {
    Backprop: backprop,
    Checkpointed: checkpointed,
    Moonwalk: moonwalk,
    PureForward: pure_forward,
    NaiveForward: naive_forward,
    RevBackprop: rev_backprop,
}


def _check_inputs(model: Any, x: Tensor, y: Tensor) -> None:
    if not isinstance(model, MoonwalkModel):
        raise ValueError(f"model must be built by moonwalk_core.torch.build; got "
                         f"{type(model).__name__}")
    if model.spec is not None and tuple(x.shape[1:]) != tuple(model.spec.input_shape):
        raise ValueError(f"x has shape {tuple(x.shape)}; the model expects "
                         f"(batch, {', '.join(map(str, model.spec.input_shape))})")
    if x.dtype != model.dtype:
        raise ValueError(f"x has dtype {x.dtype} but the model has {model.dtype}; "
                         f"convert one of them (x.to({model.dtype}) or build(..., dtype=...))")
    if x.device != model.device or y.device != model.device:
        raise ValueError(f"x is on {x.device} and y on {y.device} but the model is on "
                         f"{model.device}; move them with .to({str(model.device)!r})")


def gradient(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor, *,
             method: Method = Moonwalk()) -> GradientResult:
    """Loss, gradients and the method's own report (self-check, stored bytes, plan)."""
    _check_inputs(model, x, y)
    if type(method) not in METHODS:
        raise ValueError(f"method={method!r} is not supported by the torch backend; "
                         f"available: {[m.__name__ for m in METHODS]}")
    return METHODS[type(method)](model, loss_fn, x, y, method)


def value_and_grad(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor, *,
                   method: Method = Moonwalk()) -> tuple[Tensor, dict[str, Tensor]]:
    """``(loss, grads)`` with ``grads`` keyed like ``named_parameters()`` (SPEC §7)."""
    result = gradient(model, loss_fn, x, y, method=method)
    return result.loss, result.grads


def backward(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor, *,
             method: Method = Moonwalk()) -> GradientResult:
    """Accumulate the gradients into ``p.grad``, like ``loss_fn(model(x), y).backward()``."""
    result = gradient(model, loss_fn, x, y, method=method)
    for name, p in model.named_parameters():
        g = result.grads[name]
        p.grad = g.clone() if p.grad is None else p.grad + g
    return result
