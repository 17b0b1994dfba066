"""The forward modes of the 2024 paper: PureForward and NaiveForward (docs/method.md,
'Forward modes')."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._validation import check_jvp_count, check_surjective
from ..methods import NaiveForward, PureForward
from ._containers import nbytes
from ._model import MoonwalkModel
from ._phases import (
    LossFn,
    check_weights,
    inverse_forward_phase,
    loss_and_cotangent,
    relative_error,
)
from ._result import GradientResult

__all__ = ["pure_forward", "naive_forward"]


def _input_cotangent(model: MoonwalkModel, x: Tensor, h_last: Tensor, chunk_size: int) -> Tensor:
    """h_0 = dL/dx_0 by forward mode: one JVP per per-example input dimension.

    The tangent e_j is the same unit vector in every example, so one JVP gives J_b e_j for all
    examples b at once, and ``h_0[b, j] = <h_L[b], J_b e_j>``. This is exact because every layer
    acts on each example separately (no batch statistics). ``chunk_size`` tangents share one
    ``torch.func.vmap``-batched JVP.
    """
    batch, shape = x.shape[0], x.shape[1:]
    n = math.prod(shape)

    def directional(tangent: Tensor) -> Tensor:  # tangent (B, *shape) -> <h_L[b], J_b t[b]>
        _, x_dot = torch.func.jvp(model, (x,), (tangent,))
        return (x_dot * h_last).flatten(1).sum(1)

    batched = torch.func.vmap(directional)
    columns = []
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        tangents = torch.zeros(stop - start, n, dtype=x.dtype, device=x.device)
        tangents[torch.arange(stop - start), torch.arange(start, stop)] = 1
        tangents = tangents.view(stop - start, 1, *shape).expand(-1, batch, *shape)
        columns.append(batched(tangents))  # (chunk, B)
    return torch.cat(columns).T.reshape(x.shape)


def pure_forward(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor,
                 method: PureForward) -> GradientResult:
    """h_0 by forward mode (JVPs, chunked), then Phase III: time linear in depth.

    The loss's own gradient dL/dx_L (the loss function alone, not the network) is a vjp.

    Raises:
        ValueError: for a layer whose Jacobian is not surjective: PureForward has no Phase II,
            so nothing stores the fragment its vijp needs.
    """
    check_surjective(model)
    check_weights(model)
    with torch.no_grad():
        loss, h_last = loss_and_cotangent(loss_fn, model(x), y)
        h0 = _input_cotangent(model, x, h_last, method.chunk_size)
        del h_last  # only the reconstruction of Phase III may be compared with it
        grads, x_last, h_last = inverse_forward_phase(model, x, h0, [None] * len(model))
        _, h_true = loss_and_cotangent(loss_fn, x_last, y)
        self_check = float(relative_error(h_last, h_true))
    return GradientResult(loss, grads, self_check,
                          stored_bytes={"input": nbytes(x), "total": nbytes(x)},
                          info={"jvps": math.prod(x.shape[1:])})


def naive_forward(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor,
                  method: NaiveForward) -> GradientResult:
    """Every parameter's gradient by its own JVP of the loss (chunked): time quadratic in depth.

    Raises:
        ValueError: when the model has more than ``method.max_parameters`` parameters.
    """
    params = {k: p.detach() for k, p in model.named_parameters()}
    total = sum(p.numel() for p in params.values())
    check_jvp_count(total, method.max_parameters)
    with torch.no_grad():
        loss = loss_fn(model(x), y).detach()
    grads: dict[str, Tensor] = {}
    for name, p in params.items():
        def loss_of(value: Tensor, name: str = name) -> Tensor:
            return loss_fn(torch.func.functional_call(model, {**params, name: value}, (x,)), y)

        def derivative(tangent: Tensor, p: Tensor = p, loss_of=loss_of) -> Tensor:
            return torch.func.jvp(loss_of, (p,), (tangent,))[1]

        batched = torch.func.vmap(derivative)
        flat = []
        for start in range(0, p.numel(), method.chunk_size):
            stop = min(start + method.chunk_size, p.numel())
            tangents = torch.zeros(stop - start, p.numel(), dtype=p.dtype, device=p.device)
            tangents[torch.arange(stop - start), torch.arange(start, stop)] = 1
            flat.append(batched(tangents.view(stop - start, *p.shape)))
        grads[name] = torch.cat(flat).view(p.shape)
    return GradientResult(loss, grads, stored_bytes={"input": nbytes(x), "total": nbytes(x)},
                          info={"jvps": total})
