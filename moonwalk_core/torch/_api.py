"""The torch backend's public entry points: ``gradient``, ``value_and_grad``, ``backward``.

Checks the inputs, dispatches on the method's type (:data:`METHODS`) and judges the
self-check (docs/method.md, 'Self-check'). The methods themselves live in ``_reference``,
``_moonwalk``, ``_forward_modes`` and ``_revbackprop``; none of them imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .._accuracy import report_accuracy
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
from ._base import host
from ._forward_modes import naive_forward, pure_forward
from ._model import MoonwalkModel
from ._moonwalk import moonwalk
from ._phases import LossFn
from ._reference import backprop, checkpointed
from ._result import GradientResult
from ._revbackprop import rev_backprop

__all__ = ["gradient", "value_and_grad", "backward", "METHODS"]

METHODS: dict[type, Callable[..., GradientResult]] = {
    Backprop: backprop,
    Checkpointed: checkpointed,
    Moonwalk: moonwalk,
    PureForward: pure_forward,
    NaiveForward: naive_forward,
    RevBackprop: rev_backprop,
}


def _check_inputs(model: object, x: Tensor, y: Tensor) -> None:
    if not isinstance(model, MoonwalkModel):
        raise ValueError(f"model must be built by moonwalk_core.torch.build; got "
                         f"{type(model).__name__}")
    check_input_shape(x.shape, model.spec.input_shape if model.spec is not None else None)
    if x.dtype != model.dtype:
        raise ValueError(f"x has dtype {x.dtype} but the model has {model.dtype}; "
                         f"convert one of them (x.to({model.dtype}) or build(..., dtype=...))")
    if x.device != model.device or y.device != model.device:
        raise ValueError(f"x is on {x.device} and y on {y.device} but the model is on "
                         f"{model.device}; move them with .to({str(model.device)!r})")


def gradient(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor, *,
             method: Method = Moonwalk()) -> GradientResult:
    """Loss, gradients and the method's own report (self-check, stored bytes, plan).

    A self-check above the tolerance warns (``MoonwalkAccuracyWarning``), or raises
    ``FloatingPointError`` with ``Moonwalk(strict=True)``; PureForward's self-check is judged
    with ``Moonwalk()``'s defaults.
    """
    _check_inputs(model, x, y)
    if type(method) not in METHODS:
        raise ValueError(f"method={method!r} is not supported by the torch backend; "
                         f"available: {[m.__name__ for m in METHODS]}")
    result = METHODS[type(method)](model, loss_fn, x, y, method)
    if result.self_check is not None:
        # one fused max-abs per gradient (NaN and inf survive it), one host copy for all
        peaks = (host(torch.stack(torch._foreach_norm(list(result.grads.values()), math.inf)))
                 if result.grads else [])
        nonfinite = [k for k, v in zip(result.grads, peaks, strict=True) if not math.isfinite(v)]
        report_accuracy(method if isinstance(method, Moonwalk) else Moonwalk(),
                        str(model.dtype).removeprefix("torch."), result.self_check, nonfinite)
    return result


def value_and_grad(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor, *,
                   method: Method = Moonwalk()) -> tuple[Tensor, dict[str, Tensor]]:
    """``(loss, grads)`` with ``grads`` keyed like ``named_parameters()``."""
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
