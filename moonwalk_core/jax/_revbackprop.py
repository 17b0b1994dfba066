"""Reversible backprop (RevBackprop): inputs reconstructed from outputs going down."""

from __future__ import annotations

import jax
from jax import Array

from .._validation import reversible_prefix
from ..methods import RevBackprop
from ._base import AbstractLayer
from ._containers import nbytes
from ._model import MoonwalkModel
from ._phases import LossFn, loss_and_cotangent, relative_error
from ._result import GradientResult

__all__ = ["rev_backprop", "reversible_prefix"]


def _vjp(layer: AbstractLayer, x_in: Array, h_out: Array) -> tuple[Array, dict[str, Array]]:
    """``(h_out · J, h_out · J_theta)`` at ``x_in`` (one forward recomputation)."""
    def f(p: dict[str, Array], x: Array) -> Array:
        return layer.with_parameters(p)(x)

    _, pullback = jax.vjp(f, layer.parameters(), x_in)
    grads, h_in = pullback(h_out)
    return h_in, grads


def rev_backprop(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array,
                 method: RevBackprop) -> GradientResult:
    """Backprop that stores no activations inside the reversible prefix.

    Forward: keep only the prefix's output and the inputs of the tail layers (pool, flatten,
    linear: not invertible, so their inputs are kept; they are small after pooling). Backward:
    tail layers by vjp at their kept inputs; then, going down the couplings, reconstruct
    ``x_in = layer.inverse(x_out)`` and take the vjp there. ``info["reconstruction_error"]`` is
    the relative error of the reconstructed x_0 against the true input (round-off drift).
    """
    del method
    layers = list(model)
    n = reversible_prefix(layers)
    kept: list[Array] = []
    top = x
    for layer in layers[:n]:
        top = layer(top)
    h = top
    for layer in layers[n:]:
        kept.append(h)
        h = layer(h)
    # kept[0], when there is a tail, is `top` itself: count it once
    stored = {"input": nbytes(x), "prefix_output": nbytes(top), "tail_inputs": nbytes(kept[1:])}
    loss, h = loss_and_cotangent(loss_fn, h, y)
    grads: dict[str, Array] = {}
    for i in range(len(layers) - 1, n - 1, -1):
        h, layer_grads = _vjp(layers[i], kept.pop(), h)
        grads.update({f"layers.{i}.{k}": g for k, g in layer_grads.items()})
    x_out = top
    del top  # from here on the only activation alive is the current layer's
    for i in range(n - 1, -1, -1):
        layer = layers[i]  # reversible (reversible_prefix): it has ``inverse``
        x_in = layer.inverse(x_out)
        del x_out
        h, layer_grads = _vjp(layer, x_in, h)
        grads.update({f"layers.{i}.{k}": g for k, g in layer_grads.items()})
        x_out = x_in
    stored["total"] = sum(stored.values())
    drift = relative_error(x_out, x)
    ordered = {k: grads[k] for k in model.parameters()}
    return GradientResult(loss, ordered, stored_bytes=stored,
                          info={"reconstruction_error": drift})
