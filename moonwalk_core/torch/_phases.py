"""Moonwalk's three phases over a torch model (docs/method.md), and what they share with the
other methods: the loss's own cotangent, the weight checks and the relative error.

Nothing here dispatches on methods or reads method options beyond what it is given; the methods
(``_moonwalk``, ``_forward_modes``, ``_revbackprop``) call these functions, and ``_api``
dispatches to the methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._plan import LayerPlan
from ._containers import FullFragment
from ._model import MoonwalkModel

__all__ = ["LossFn", "loss_and_cotangent", "relative_error", "check_weights", "forward_phase",
           "reverse_phase", "inverse_forward_phase"]

LossFn = Callable[[Tensor, Tensor], Tensor]


def loss_and_cotangent(loss_fn: LossFn, x_out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(loss, dloss/dx_out)`` through the loss alone."""
    loss, pullback = torch.func.vjp(lambda z: loss_fn(z, y), x_out)
    if loss.ndim != 0:
        raise ValueError(f"loss_fn must return a scalar; it returned shape {tuple(loss.shape)}")
    (h,) = pullback(torch.ones_like(loss))
    return loss.detach(), h


def relative_error(a: Tensor, b: Tensor) -> Tensor:
    """``‖a - b‖ / ‖b‖`` (``‖a - b‖`` when b = 0) as a 0-dim tensor on the inputs' device: no
    host sync until the caller reads it."""
    ref = torch.linalg.vector_norm(b)
    diff = torch.linalg.vector_norm(a - b)
    return torch.where(ref > 0, diff / torch.where(ref > 0, ref, 1), diff)


def check_weights(model: MoonwalkModel) -> None:
    """Every layer's :meth:`check_weights` (e.g. singular taps), before any phase runs."""
    for layer in model:
        layer.check_weights()


def forward_phase(model: MoonwalkModel, x0: Tensor, *, pack_residuals: bool = True
                  ) -> tuple[Tensor, list[Any]]:
    """Phase I: x_L and the input-vjp residuals of every layer (nothing else)."""
    residuals = []
    x = x0
    for layer in model:
        x, res = layer.forward_with_residual(x, pack_residuals=pack_residuals)
        residuals.append(res)
    return x, residuals


def reverse_phase(model: MoonwalkModel, residuals: list[Any], h_last: Tensor,
                  plan: list[LayerPlan]) -> tuple[Tensor, list[Any]]:
    """Phase II: h_0 and the fragments, by input vjps only; each h_i dropped once used."""
    fragments: list[Any] = [None] * len(model)
    h = h_last
    for i in range(len(model) - 1, -1, -1):
        layer, res = model.layers[i], residuals.pop()
        if plan[i].checkpoint:
            fragments[i] = FullFragment(h)
        elif plan[i].negative_units:  # the plan only asks layers that offer it
            fragments[i] = layer.negative_units_fragment(res, h)
        else:
            fragments[i] = layer.fragment(res, h, block_size=plan[i].block_size)
        h = layer.vjp(res, h)
        del res  # the residual's only use was this vjp
    return h, fragments


def inverse_forward_phase(model: MoonwalkModel, x0: Tensor, h0: Tensor, fragments: list[Any],
                          restart_checks: dict[int, Tensor] | None = None
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
            # Note: [self-check at restarts] (moonwalk_core/_accuracy.py)
            _, res = layer.forward_with_residual(x)
            restart_checks[i] = relative_error(h, layer.vjp(res, frag.h_out))
            del res
        h = layer.vijp(x, h, frag)
        x, layer_grads = layer.forward_and_param_vjp(x, h)
        grads.update({f"layers.{i}.{k}": g for k, g in layer_grads.items()})
    return grads, x, h
