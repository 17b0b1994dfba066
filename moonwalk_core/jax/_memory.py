"""Byte accounting from JAX itself: ``jax.vjp`` residuals and XLA's compiled memory analysis.

Torch counts autograd's saved tensors with hooks (``count_saved_tensors``); JAX has no tape to
hook, so the counterparts are (1) the residual leaves of the pullback ``jax.vjp`` returns and
(2) the temp bytes XLA's buffer assignment reserves for a compiled computation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
from jax import Array

from ..methods import Method, Moonwalk

__all__ = ["residual_bytes", "compiled_memory", "SOURCE"]

SOURCE = "XLA compiled memory analysis (temp bytes)"


def residual_bytes(pullback: Callable[..., Any], exclude: Any = ()) -> int:
    """Bytes of the distinct arrays a ``jax.vjp`` pullback keeps for the backward pass.

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


def compiled_memory(model: Any, loss_fn: Callable[[Array, Array], Array], x: Array, y: Array,
                    method: Method = Moonwalk()) -> dict[str, Any]:
    """Compile one gradient of ``method`` and read XLA's memory analysis.

    The compiled function maps (parameters, x, y) to (loss, grads, self-check), the outputs of
    :func:`moonwalk_core.jax.gradient`. A ``checkpoint_every="auto"`` plan is made first,
    outside the compiled function.

    Returns:
        ``temp_bytes`` (XLA's temporary buffers: the peak working memory beyond arguments and
        outputs), ``argument_bytes``, ``output_bytes``, ``generated_code_bytes``,
        ``compile_seconds`` and ``source`` (the label of these numbers).
    """
    from ._engine import _check_inputs, _run, plan_storage

    _check_inputs(model, x, y)
    plan = tuple(plan_storage(model, method, x)) if isinstance(method, Moonwalk) else None

    def f(params: dict[str, Array], x: Array, y: Array) -> tuple[Array, dict[str, Array], Any]:
        result = _run(model.with_parameters(params), loss_fn, x, y, method, plan)
        return result.loss, result.grads, result.self_check

    start = time.perf_counter()
    compiled = jax.jit(f).lower(model.parameters(), x, y).compile()
    seconds = time.perf_counter() - start
    analysis = compiled.memory_analysis()
    return {
        "temp_bytes": int(analysis.temp_size_in_bytes),
        "argument_bytes": int(analysis.argument_size_in_bytes),
        "output_bytes": int(analysis.output_size_in_bytes),
        "generated_code_bytes": int(analysis.generated_code_size_in_bytes),
        "compile_seconds": seconds,
        "source": SOURCE,
    }
