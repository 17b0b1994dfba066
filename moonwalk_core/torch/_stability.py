"""Storage plans for the torch backend: fixed intervals, and ``checkpoint_every="auto"``.

Phase III multiplies the error it carries by about each layer's condition number
(docs/method.md, 'Error growth'). From each layer's ``condition()`` the "auto" plan chooses,
with the fewest stored bytes, (a) each causal conv's block size, so that its back-substitution
(growth ρ^steps) stays bounded, and (b) which layers store their full output cotangent (a
checkpoint: Phase III restarts from exact values) or, for a leaky ReLU, only h_out at its
negative units (no division by the slope), so that the predicted amplification between two
restarts stays under tolerance / (2 eps) (Note: [predicted amplification] in
:mod:`moonwalk_core._stability_plan`).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from .._plan import LayerPlan, fixed_plan
from .._stability_plan import choose, layer_facts
from ..methods import Moonwalk
from ._base import host
from ._model import MoonwalkModel
from ._precision import working_epsilon

__all__ = ["plan_storage", "auto_plan"]

# model -> (weights' identity and versions, shape, method, plan): the condition estimates cost
# a few ms per layer, worth skipping when the weights have not changed since the last call
# (gradient accumulation over micro-batches, benchmarks)
_CACHE: weakref.WeakKeyDictionary[MoonwalkModel, tuple[tuple, list[LayerPlan]]] = (
    weakref.WeakKeyDictionary())


def plan_storage(model: MoonwalkModel, method: Moonwalk, x: Tensor) -> list[LayerPlan]:
    """Per-layer storage plan: block size, cotangent checkpoint, negative units, and why."""
    if method.checkpoint_every == "auto":
        return auto_plan(model, method, x)
    return fixed_plan(len(model), method)


def _facts(model: MoonwalkModel, x: Tensor) -> list:
    """Condition estimates, per-example output shapes and negative-input fractions.

    Runs one example forward (cheap next to the batch Moonwalk is about to run).
    """
    seen = []
    with torch.no_grad():
        h = x[:1]
        for layer in model:
            negative = (h <= 0).double().mean()
            h = layer(h)
            seen.append((layer, layer.condition(), tuple(h.shape[1:]), negative))
    negatives = host(torch.stack([n for *_, n in seen])).tolist()  # one copy for all layers
    return [layer_facts(layer, cond, shape, neg)
            for (layer, cond, shape, _), neg in zip(seen, negatives, strict=True)]


def auto_plan(model: MoonwalkModel, method: Moonwalk, x: Tensor) -> list[LayerPlan]:
    """Storage plan for ``checkpoint_every="auto"``: block sizes, checkpoints, negative units.

    Keeps the predicted error amplification between two restarts of Phase III under
    ``tolerance / (2 eps)`` with the fewest stored bytes, eps the precision the products run at
    (:func:`working_epsilon`: TF32's for float32 on a GPU that allows it); each entry's
    ``reason`` says why. ``method.block_size`` is kept for stable causal convs and caps the
    others' block sizes.
    """
    params = list(model.parameters())
    # versions miss edits through ``.data``; the norms catch those
    norms = (host(torch.stack([p.detach().double().norm() for p in params])).tolist()
             if params else [])
    eps = working_epsilon(model.dtype, x.device)
    key = (tuple((id(p), p._version) for p in params), tuple(norms), tuple(x.shape), method,
           eps)
    cached = _CACHE.get(model)
    if cached is not None and cached[0] == key:
        return list(cached[1])
    dtype = str(model.dtype).removeprefix("torch.")
    plan = choose(_facts(model, x), batch=x.shape[0],
                  itemsize=model.dtype.itemsize,
                  eps=eps, tolerance=method.tolerance_for(dtype),
                  block_size=method.block_size)
    _CACHE[model] = (key, plan)
    return list(plan)
