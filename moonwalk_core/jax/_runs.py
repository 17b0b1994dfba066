"""Runs of identical layers, so that each Moonwalk phase is one ``lax.scan`` per run.

# Note: [why scan over layers]
XLA's CPU buffer assignment gives every ``while`` loop (each causal conv's back-substitution is
one) its own output buffer: unrolled over L layers, Phase III would hold L activations, the
memory Moonwalk exists to save. Scanning over repeated layers runs each loop body once per
iteration in the same buffers, and compiles each layer kind once.

A run is ``repeats`` copies of a unit of ``unit`` consecutive layers with identical structure
(type, static fields, parameter shapes, input shape and storage plan). Its layers are stacked
along a new leading axis (the parameters are copied once per gradient; they are small next to
activations). Error messages raised while tracing a run name the layers of its first unit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ._base import AbstractLayer
from ._result import LayerPlan

__all__ = ["Run", "find_runs", "stack_run", "scan_run"]

MAX_UNIT = 8
"""Longest unit searched for (e.g. conv + activation is 2; checkpoints every m layers need
a unit that is a multiple of m)."""


class Run(NamedTuple):
    """Layers ``start .. start + unit * repeats - 1``: ``repeats`` copies of a ``unit``."""

    start: int
    unit: int
    repeats: int

    @property
    def stop(self) -> int:
        return self.start + self.unit * self.repeats


def _signatures(layers: tuple[AbstractLayer, ...], plan: list[LayerPlan], x: Any) -> list[Any]:
    sigs = []
    shape = jax.ShapeDtypeStruct(x.shape, x.dtype)
    for layer, p in zip(layers, plan, strict=True):
        leaves, treedef = jax.tree_util.tree_flatten(layer.replace_static(index=-1))
        sigs.append((treedef, tuple((leaf.shape, leaf.dtype) for leaf in leaves), p,
                     shape.shape, shape.dtype))
        shape = jax.eval_shape(lambda f, v: f(v), layer, shape)
    return sigs


def find_runs(layers: tuple[AbstractLayer, ...], plan: list[LayerPlan], x: Any) -> list[Run]:
    """Cover the layers with runs, greedily taking the run that covers most layers first."""
    sigs, n = _signatures(layers, plan, x), len(layers)
    runs, i = [], 0
    while i < n:
        best = Run(i, 1, 1)
        for unit in range(1, min(MAX_UNIT, n - i) + 1):
            reps = 1
            while (i + (reps + 1) * unit <= n
                   and sigs[i + reps * unit:i + (reps + 1) * unit] == sigs[i:i + unit]):
                reps += 1
            if reps >= 2 and unit * reps > best.unit * best.repeats:
                best = Run(i, unit, reps)
        runs.append(best)
        i = best.stop
    return runs


def stack_run(layers: tuple[AbstractLayer, ...], run: Run) -> tuple[AbstractLayer, ...]:
    """The run's unit with every parameter stacked over the repeats (leading axis)."""
    units = [tuple(layers[run.start + r * run.unit + j].replace_static(index=run.start + j)
                   for j in range(run.unit)) for r in range(run.repeats)]
    return jax.tree.map(lambda *a: jnp.stack(a), *units)


def scan_run(body: Callable[[Any, Any], tuple[Any, Any]], carry: Any, xs: Any, run: Run, *,
             reverse: bool = False) -> tuple[Any, Any]:
    """``lax.scan`` over a stacked run; a run of one unit is called directly (its carry may
    change shape, e.g. a stem), with the same stacked inputs and outputs."""
    if run.repeats > 1:
        return lax.scan(body, carry, xs, length=run.repeats, reverse=reverse)
    carry, ys = body(carry, jax.tree.map(lambda a: a[0], xs))
    return carry, jax.tree.map(lambda a: a[None], ys)
