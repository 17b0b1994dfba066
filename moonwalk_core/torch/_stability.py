"""``checkpoint_every="auto"`` for the torch backend: where Moonwalk stores what.

Phase III multiplies the error it carries by about each layer's condition number (SPEC §1
'Error growth'). From each layer's ``condition()`` this chooses, with the fewest stored bytes,
(a) each causal conv's block size, so that its back-substitution (growth ρ^steps) stays bounded,
and (b) which layers store their full output cotangent (a checkpoint: Phase III restarts from
exact values) or, for a leaky ReLU, only h_out at its negative units (no division by the slope),
so that the predicted amplification between two restarts stays under tolerance / (2 eps)
(Note: [predicted amplification] in :mod:`moonwalk_core._stability_plan`).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from .._stability_plan import LayerFacts, choose
from ..methods import DEFAULT_TOLERANCE, Moonwalk
from ._activations import LeakyReLU
from ._causal_conv import CausalConv1d
from ._model import MoonwalkModel
from ._result import LayerPlan

__all__ = ["auto_plan"]

# model -> (weights' identity and versions, shape, method, plan): the condition estimates cost
# a few ms per layer, worth skipping when the weights have not changed since the last call
# (gradient accumulation over micro-batches, benchmarks)
_CACHE: weakref.WeakKeyDictionary[MoonwalkModel, tuple[tuple, list[LayerPlan]]] = (
    weakref.WeakKeyDictionary())


def _facts(model: MoonwalkModel, x: Tensor) -> list[LayerFacts]:
    """Condition estimates, per-example output shapes and negative-input fractions.

    Runs one example forward (cheap next to the batch Moonwalk is about to run).
    """
    facts = []
    with torch.no_grad():
        h = x[:1]
        for layer in model:
            negative = float((h <= 0).double().mean())
            h = layer(h)
            conv = isinstance(layer, CausalConv1d)
            facts.append(LayerFacts(
                layer.condition(), tuple(h.shape[1:]),
                causal_tail=layer.tail if conv else 0,
                dilation=layer.dilation if conv else 1,
                negative_slope=layer.negative_slope if isinstance(layer, LeakyReLU) else None,
                negative_fraction=negative))
    return facts


def auto_plan(model: MoonwalkModel, method: Moonwalk, x: Tensor) -> list[LayerPlan]:
    """Storage plan for ``checkpoint_every="auto"``: block sizes, checkpoints, negative units.

    Keeps the predicted error amplification between two restarts of Phase III under
    ``tolerance / (2 eps(dtype))`` with the fewest stored bytes; each entry's ``reason`` says why.
    ``method.block_size`` is kept for stable causal convs and caps the others' block sizes.
    """
    params = list(model.parameters())
    # versions miss edits through ``.data``; the norms catch those
    norms = torch.stack([p.detach().double().norm() for p in params]).tolist() if params else []
    key = (tuple((id(p), p._version) for p in params), tuple(norms), tuple(x.shape), method)
    cached = _CACHE.get(model)
    if cached is not None and cached[0] == key:
        return list(cached[1])
    dtype = str(model.dtype).removeprefix("torch.")
    choices = choose(_facts(model, x), batch=x.shape[0],
                     itemsize=torch.empty((), dtype=model.dtype).element_size(),
                     eps=torch.finfo(model.dtype).eps,
                     tolerance=method.tolerance or DEFAULT_TOLERANCE.get(dtype, 1e-4),
                     block_size=method.block_size)
    plan = [LayerPlan(c.block_size, c.checkpoint, c.reason, c.negative_units) for c in choices]
    _CACHE[model] = (key, plan)
    return list(plan)
