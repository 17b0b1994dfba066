"""Autograd methods: Backprop (the reference) and Checkpointed."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ..methods import Backprop, Checkpointed
from ._memory import count_saved_tensors
from ._model import MoonwalkModel
from ._result import GradientResult

__all__ = ["backprop", "checkpointed"]

LossFn = Callable[[Tensor, Tensor], Tensor]


def _autograd(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor,
              forward: Callable[[Tensor], Tensor]) -> tuple[Tensor, dict[str, Tensor], int]:
    params = dict(model.named_parameters())
    with torch.enable_grad(), count_saved_tensors(params.values()) as counter:
        loss = loss_fn(forward(x), y)
    grads = torch.autograd.grad(loss, list(params.values()))
    return loss.detach(), dict(zip(params, grads, strict=True)), counter.bytes


def backprop(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor,
             method: Backprop) -> GradientResult:
    """Reverse-mode autodiff; stored bytes are autograd's saved tensors (no weights)."""
    del method
    loss, grads, saved = _autograd(model, loss_fn, x, y, model)
    return GradientResult(loss, grads, stored_bytes={"saved_tensors": saved, "total": saved})


def checkpointed(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor,
                 method: Checkpointed) -> GradientResult:
    """``torch.utils.checkpoint`` (non-reentrant) over ``segments`` segments (default sqrt(L)).

    Stored bytes: the segment inputs the checkpoints keep, plus what autograd saves outside
    the recomputed segments (the loss).
    """
    n = len(model)
    segments = min(method.segments or max(1, round(math.sqrt(n))), n)
    bounds = [round(i * n / segments) for i in range(segments + 1)]
    kept: list[Tensor] = []

    def run(start: int, stop: int) -> Callable[[Tensor], Tensor]:
        def segment(inp: Tensor) -> Tensor:
            for layer in model.layers[start:stop]:
                inp = layer(inp)
            return inp

        return segment

    def forward(inp: Tensor) -> Tensor:
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            kept.append(inp)
            inp = checkpoint(run(start, stop), inp, use_reentrant=False)
        return inp

    loss, grads, saved = _autograd(model, loss_fn, x, y, forward)
    inputs = sum(t.numel() * t.element_size() for t in kept)
    return GradientResult(loss, grads,
                          stored_bytes={"segment_inputs": inputs, "saved_tensors": saved,
                                        "total": inputs + saved},
                          info={"segments": segments})
