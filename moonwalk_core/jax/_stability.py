"""Storage plans for the JAX backend: fixed intervals, and ``checkpoint_every="auto"``.

The "auto" plan is the torch backend's (``moonwalk_core.torch._stability``) on the same
backend-neutral planner (:mod:`moonwalk_core._stability_plan`): causal-conv block sizes and
cotangent checkpoints that keep the predicted error amplification between two restarts of Phase
III under tolerance / (2 eps). Two differences, both from XLA's static shapes: a leaky ReLU's
negative-units fragment would have the activation's full shape (as ReLU's fragment does here,
Note: [static shapes]), so it is never cheaper than a checkpoint and is not offered; and reasons
carry no per-layer numbers, so that layers with the same decision keep equal plans and still
form one ``lax.scan`` run (``_runs.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from .._plan import LayerPlan, fixed_plan
from .._stability_plan import LayerFacts, choose, layer_facts
from ..methods import Moonwalk
from ._model import MoonwalkModel
from ._precision import working_epsilon

__all__ = ["plan_storage", "auto_plan"]


def plan_storage(model: MoonwalkModel, method: Moonwalk, x: Array) -> list[LayerPlan]:
    """Per-layer storage plan: block size, cotangent checkpoint, and why."""
    if method.checkpoint_every == "auto":
        return auto_plan(model, method, x)
    return fixed_plan(len(model), method)


def _facts(model: MoonwalkModel, x: Array) -> list[LayerFacts]:
    """Condition estimates and per-example output shapes (shapes by ``eval_shape``: free)."""
    facts = []
    shape = jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype)
    for layer in model:
        shape = jax.eval_shape(lambda f, v: f(v), layer, shape)
        facts.append(layer_facts(layer, layer.condition(), tuple(shape.shape[1:])))
    return facts


def auto_plan(model: MoonwalkModel, method: Moonwalk, x: Array) -> list[LayerPlan]:
    """Storage plan for ``checkpoint_every="auto"``: block sizes and checkpoints.

    Keeps the predicted error amplification between two restarts of Phase III under
    ``tolerance / (2 eps)`` with the fewest stored bytes, eps the precision the products run at
    (:func:`working_epsilon`: TF32's for float32 on a GPU under XLA's default precision); each
    entry's ``reason`` says why. ``method.block_size`` is kept for stable causal convs and caps
    the others' block sizes. Needs concrete weights (call outside ``jit``).
    """
    dtype = jnp.dtype(model.dtype)
    platform = next(iter(x.devices())).platform if hasattr(x, "devices") else (
        jax.default_backend())
    return choose(_facts(model, x), batch=x.shape[0], itemsize=dtype.itemsize,
                  eps=working_epsilon(dtype, platform),
                  tolerance=method.tolerance_for(str(dtype)),
                  block_size=method.block_size, negative_units=False, detailed=False)
