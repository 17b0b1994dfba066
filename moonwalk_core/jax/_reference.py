"""Autodiff methods: Backprop (the reference, ``jax.vjp``) and Checkpointed (``jax.checkpoint``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from ..methods import Backprop, Checkpointed
from ._containers import nbytes
from ._model import MoonwalkModel
from ._phases import LossFn
from ._result import GradientResult

__all__ = ["backprop", "checkpointed", "residual_bytes"]

Forward = Callable[[MoonwalkModel, Array], Array]


def residual_bytes(pullback: Callable[..., Any], exclude: Any = ()) -> int:
    """Bytes of the distinct arrays a ``jax.vjp`` pullback keeps for the backward pass: JAX's
    counterpart of torch's saved-tensor count (it has no tape to hook).

    Arrays that are leaves of ``exclude`` (the parameters, which the model holds anyway) are
    not counted; an array appearing twice counts once. Works on tracers (shapes are static).
    """
    skip = {id(leaf) for leaf in jax.tree_util.tree_leaves(exclude)}
    seen: dict[int, int] = {}
    for leaf in jax.tree_util.tree_leaves(pullback):
        if id(leaf) in skip or not hasattr(leaf, "dtype"):
            continue
        seen[id(leaf)] = int(leaf.size) * leaf.dtype.itemsize
    return sum(seen.values())


def _autodiff(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array,
              forward: Forward) -> tuple[Array, dict[str, Array], int]:
    params = model.parameters()

    def f(p: dict[str, Array]) -> Array:
        return loss_fn(forward(model.with_parameters(p), x), y)

    loss, pullback = jax.vjp(f, params)
    (grads,) = pullback(jnp.ones_like(loss))
    return loss, grads, residual_bytes(pullback, exclude=params)


def backprop(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array,
             method: Backprop) -> GradientResult:
    """Reverse-mode autodiff; stored bytes are the residuals ``jax.vjp`` keeps (no weights)."""
    del method
    loss, grads, saved = _autodiff(model, loss_fn, x, y, lambda m, inp: m(inp))
    return GradientResult(loss, grads, stored_bytes={"saved_tensors": saved, "total": saved})


def checkpointed(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array,
                 method: Checkpointed) -> GradientResult:
    """``jax.checkpoint`` over ``segments`` segments (default sqrt(L)).

    Stored bytes: the segment inputs the checkpoints keep, plus the other residuals of
    ``jax.vjp`` (the loss's; weights excluded).
    """
    n = len(model)
    segments = min(method.segments or max(1, round(math.sqrt(n))), n)
    bounds = [round(i * n / segments) for i in range(segments + 1)]
    kept: list[Array] = []

    def run(layers: tuple, inp: Array) -> Array:
        for layer in layers:
            inp = layer(inp)
        return inp

    def forward(m: MoonwalkModel, inp: Array) -> Array:
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            kept.append(inp)
            inp = jax.checkpoint(run)(m.layers[start:stop], inp)
        return inp

    loss, grads, saved = _autodiff(model, loss_fn, x, y, forward)
    inputs = nbytes(kept)
    return GradientResult(loss, grads,
                          stored_bytes={"segment_inputs": inputs,
                                        "saved_tensors": max(saved - inputs, 0),
                                        "total": max(saved, inputs)},
                          info={"segments": segments})
