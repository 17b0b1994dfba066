"""``checkpoint_every="auto"`` for the JAX backend: where Moonwalk stores what.

The mirror of ``moonwalk_core.torch._stability`` on the same backend-neutral planner
(:mod:`moonwalk_core._stability_plan`): causal-conv block sizes and cotangent checkpoints that
keep the predicted error amplification between two restarts of Phase III under tolerance / (2 eps).
Two differences, both from XLA's static shapes: a leaky ReLU's negative-units fragment would
have the activation's full shape (as ReLU's fragment does here), so it is never cheaper than a
checkpoint and is not offered; and reasons carry no per-layer numbers, so that layers with the
same decision keep equal plans and still form one ``lax.scan`` run (``_runs.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from .._stability_plan import LayerFacts, choose, symbol_condition
from ..methods import DEFAULT_TOLERANCE, Moonwalk
from ._causal_conv import CausalConv1d
from ._model import MoonwalkModel
from ._result import LayerPlan

__all__ = ["auto_plan"]


def _facts(model: MoonwalkModel, x: Array) -> list[LayerFacts]:
    """Condition estimates and per-example output shapes (shapes by ``eval_shape``: free)."""
    facts = []
    shape = jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype)
    for layer in model:
        shape = jax.eval_shape(lambda f, v: f(v), layer, shape)
        condition = dict(layer.condition())
        conv = isinstance(layer, CausalConv1d)
        if conv and layer.kernel_size > 1 and "symbol_condition" not in condition:
            condition["symbol_condition"] = symbol_condition(layer.weight)
        facts.append(LayerFacts(condition, tuple(shape.shape[1:]),
                                causal_tail=layer.tail if conv else 0,
                                dilation=layer.dilation if conv else 1))
    return facts


def auto_plan(model: MoonwalkModel, method: Moonwalk, x: Array) -> list[LayerPlan]:
    """Storage plan for ``checkpoint_every="auto"``: block sizes and checkpoints.

    Keeps the predicted error amplification between two restarts of Phase III under
    ``tolerance / (2 eps(dtype))`` with the fewest stored bytes; each entry's ``reason`` says why.
    ``method.block_size`` is kept for stable causal convs and caps the others' block sizes.
    Needs concrete weights (call outside ``jit``).
    """
    dtype = jnp.dtype(model.dtype)
    choices = choose(_facts(model, x), batch=x.shape[0], itemsize=dtype.itemsize,
                     eps=float(jnp.finfo(dtype).eps),
                     tolerance=method.tolerance or DEFAULT_TOLERANCE.get(str(dtype), 1e-4),
                     block_size=method.block_size, negative_units=False, detailed=False)
    return [LayerPlan(c.block_size, c.checkpoint, c.reason) for c in choices]
