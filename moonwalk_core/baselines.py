"""The baselines a user would pick instead of Moonwalk, with the package model's own weights.

* torch: the plain ``nn.Sequential`` of :func:`moonwalk_core.torch.to_module` (``nn.Conv1d``
  after a left pad, ``nn.ReLU``, ...) under autograd, and the same modules under
  ``torch.utils.checkpoint.checkpoint_sequential`` with any number of segments.
* JAX: the same 1D net written with ``lax.conv_general_dilated`` (batched, no Equinox, no
  package layer) under ``jax.grad``, and with ``jax.checkpoint`` around each of ``segments``
  contiguous runs of layers.

Every ratio of the claims table divides by the plain framework net (:data:`PLAIN`); the
package's own Backprop is measured beside it. :func:`torch_step_peak` measures what a whole
training step holds (weights, gradients, Adam state, batch and activations), not only what one
gradient adds. See ``docs/experiments.md`` ("Baselines").
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .arch import ArchSpec

__all__ = ["PLAIN", "checkpoint_label", "torch_plain_gradient", "torch_peak",
           "torch_step_peak", "jax_plain_loss", "jax_plain_gradient", "jax_plain_memory",
           "segment_counts", "frontier", "STEP_SOURCE", "JAX_SOURCE"]

PLAIN = "Plain autograd"
"""The method label of the plain framework net (torch autograd or ``jax.grad``)."""
JAX_SOURCE = "XLA compiled memory analysis (temp bytes)"
"""The label of :func:`jax_plain_memory`'s figure: the same source as
``moonwalk_core.jax.compiled_memory``'s (a test checks they agree). This module imports no
backend package of its own (only the frameworks), so a torch-only stage does not depend on the
JAX backend."""
STEP_SOURCE = ("whole training step: weights + gradients + Adam state + batch + activations "
               "(torch profiler memory events, CPU allocator)")


def checkpoint_label(segments: int) -> str:
    """The method label of the framework's checkpointing with ``segments`` segments."""
    return f"checkpoint ({segments} seg)"


def segment_counts(layers: int) -> list[int]:
    """Every segment count from 1 (one segment: the whole net recomputed) to ``layers``."""
    if layers < 1:
        raise ValueError(f"segment_counts: need at least one layer, got {layers}")
    return list(range(1, layers + 1))


# -- torch -------------------------------------------------------------------------------------

def torch_plain_gradient(model: Any, loss_fn: Callable[[Any, Any], Any], x: Any, y: Any, *,
                         segments: int | None = None) -> Callable[[], dict[str, Any]]:
    """A call that computes the loss gradient of ``model``'s weights with plain torch modules.

    The modules (``moonwalk_core.torch.to_module``) share ``model``'s parameters, so the
    gradients are keyed by ``model``'s parameter names and compare one to one with any method
    of the package. ``segments``: None for plain autograd, else
    ``torch.utils.checkpoint.checkpoint_sequential`` with that many segments (non-reentrant).

    Raises:
        ValueError: for ``segments`` below 1 or above the number of modules.
    """
    import torch
    from torch.utils.checkpoint import checkpoint_sequential

    from .torch import to_module

    module = to_module(model)
    if segments is not None and not 1 <= segments <= len(module):
        raise ValueError(f"segments={segments} is not allowed; use 1..{len(module)} "
                         "(the plain net's module count)")
    names, params = zip(*model.named_parameters(), strict=True)

    def call() -> dict[str, Any]:
        out = (module(x) if segments is None else
               checkpoint_sequential(module, segments, x, use_reentrant=False))
        grads = torch.autograd.grad(loss_fn(out, y), params)
        return dict(zip(names, grads, strict=True))

    return call


def torch_peak(call: Callable[[], Any]) -> int:
    """Peak bytes ``call()`` adds on the harness's device, after one unmeasured warm-up call
    (the same protocol and source as :func:`moonwalk_core.measure.peak_memory`)."""
    from .measure.adapter import current_device
    from .torch._peak import peak_of_call

    call()
    gc.collect()
    return int(peak_of_call(call, current_device())[0])


def torch_step_peak(build: Callable[[], Any], step: Callable[[Any, Any, Any], Any], x: Any,
                    y: Any, *, learning_rate: float = 1e-3) -> int:
    """Peak live bytes of training from scratch for two steps: the model's weights, its
    gradients, Adam's two moments (allocated at the first step), the batch's activations.

    ``build()`` makes the model (its weights are counted), ``step(model, x, y)`` fills the
    parameters' ``.grad`` (e.g. ``moonwalk_core.torch.backward`` or ``loss.backward()``); the
    batch itself exists before the call and is not counted. Source: :data:`STEP_SOURCE`.
    """
    import torch

    from .torch._peak import peak_of_call

    def train() -> None:
        model = build()
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        for _ in range(2):  # the second step holds Adam's state and the new gradients at once
            optimizer.zero_grad(set_to_none=False)
            step(model, x, y)
            optimizer.step()

    from .measure.adapter import current_device

    train()  # warm-up: library workspaces are not a training step's
    gc.collect()
    return int(peak_of_call(train, current_device())[0])


# -- JAX ---------------------------------------------------------------------------------------

_SUPPORTED = {"stem", "causal_conv1d", "patch_conv1d", "relu", "leaky_relu", "flatten", "linear"}


def _jax_layer(ls: Any, params: Mapping[str, Any], x: Any) -> Any:
    import jax
    from jax import lax

    w, b = params.get(f"layers.{ls.index}.weight"), params.get(f"layers.{ls.index}.bias")
    if ls.type in ("stem", "causal_conv1d", "patch_conv1d"):
        k = w.shape[-1]
        dilation = ls.fields.get("dilation", 1)
        stride = k if ls.type == "patch_conv1d" else 1
        pad = (0, 0) if ls.type == "patch_conv1d" else ((k - 1) * dilation, 0)
        out = lax.conv_general_dilated(x, w, (stride,), [pad], rhs_dilation=(dilation,),
                                       dimension_numbers=("NCH", "OIH", "NCH"))
        return out + b[None, :, None]
    if ls.type == "relu":
        return jax.nn.relu(x)
    if ls.type == "leaky_relu":
        return jax.nn.leaky_relu(x, ls["negative_slope"])
    if ls.type == "flatten":
        return x.reshape(x.shape[0], -1)
    return x @ w.T + b[None, :]  # linear


def _check_plain(spec: ArchSpec) -> None:
    unknown = sorted({ls.type for ls in spec.layers} - _SUPPORTED)
    if unknown:
        raise ValueError(f"the plain JAX net covers the 1D family ({sorted(_SUPPORTED)}); "
                         f"this architecture also has {unknown}")


def _segments(spec: ArchSpec, segments: int | None) -> list[Sequence[Any]]:
    layers = list(spec.layers)
    if segments is None:
        return [layers]
    if not 1 <= segments <= len(layers):
        raise ValueError(f"segments={segments} is not allowed; use 1..{len(layers)} "
                         "(the architecture's layer count)")
    bounds = np.linspace(0, len(layers), segments + 1).round().astype(int)
    return [layers[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def jax_plain_loss(spec: ArchSpec, loss_fn: Callable[[Any, Any], Any], *,
                   segments: int | None = None) -> Callable[[Any, Any, Any], Any]:
    """``loss(params, x, y)`` of the plain ``lax.conv_general_dilated`` net of ``spec`` (the
    1D family), parameters named as ``moonwalk_core.jax.export_weights`` names them.

    ``segments``: None for the plain net, else ``jax.checkpoint`` around each of that many
    contiguous runs of layers (only the segment inputs are kept for the backward pass).

    Raises:
        ValueError: for an architecture outside the 1D family or a bad ``segments``.
    """
    import jax

    _check_plain(spec)
    parts = _segments(spec, segments)

    def run_part(part: Sequence[Any]) -> Callable[[Any, Any], Any]:
        def apply(params: Mapping[str, Any], x: Any) -> Any:
            for ls in part:
                x = _jax_layer(ls, params, x)
            return x

        return apply if segments is None else jax.checkpoint(apply)

    runs = [run_part(p) for p in parts]

    def loss(params: Mapping[str, Any], x: Any, y: Any) -> Any:
        for apply in runs:
            x = apply(params, x)
        return loss_fn(x, y)

    return loss


def jax_plain_gradient(model: Any, loss_fn: Callable[[Any, Any], Any], x: Any, y: Any, *,
                       segments: int | None = None) -> Callable[[], dict[str, Any]]:
    """A jitted call returning ``jax.grad`` of the plain net with ``model``'s weights, keyed by
    ``model``'s parameter names."""
    import jax

    params = {k: jax.numpy.asarray(v).astype(x.dtype) for k, v in model.parameters().items()}
    grad = jax.jit(jax.grad(jax_plain_loss(model.spec, loss_fn, segments=segments)))
    return lambda: grad(params, x, y)


def jax_plain_memory(model: Any, loss_fn: Callable[[Any, Any], Any], x: Any, y: Any, *,
                     segments: int | None = None) -> dict[str, Any]:
    """XLA's compiled memory analysis of the plain net's ``value_and_grad`` (the same source
    as ``moonwalk_core.jax.compiled_memory``): ``temp_bytes`` and ``source``."""
    import jax

    params = {k: jax.numpy.asarray(v).astype(x.dtype) for k, v in model.parameters().items()}
    f = jax.value_and_grad(jax_plain_loss(model.spec, loss_fn, segments=segments))
    analysis = jax.jit(f).lower(params, x, y).compile().memory_analysis()
    return {"temp_bytes": int(analysis.temp_size_in_bytes), "source": JAX_SOURCE}


# -- the memory/time frontier ------------------------------------------------------------------

def frontier(points: Sequence[tuple[float, float]], time: float) -> float:
    """The least peak among ``points`` (time, peak) that are at most ``time`` slow; where none
    is that fast, the least peak of all (the stricter comparison). NaN for no points."""
    if not points:
        return math.nan
    fast = [peak for t, peak in points if t <= time]
    return min(fast) if fast else min(peak for _, peak in points)
