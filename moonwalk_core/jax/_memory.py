"""XLA's compiled memory analysis of one gradient: ``compiled_memory``.

Torch counts autograd's saved tensors with hooks (``count_saved_tensors``); JAX has no tape to
hook, so its counterparts are the residual leaves of ``jax.vjp``'s pullback
(``_reference.residual_bytes``) and the temp bytes XLA's buffer assignment reserves for a
compiled computation (this module).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
from jax import Array

from ..methods import Method, Moonwalk
from ._api import prepare, run

__all__ = ["compiled_memory", "SOURCE"]

SOURCE = "XLA compiled memory analysis (temp bytes)"


def compiled_memory(model: Any, loss_fn: Callable[[Array, Array], Array], x: Array, y: Array,
                    method: Method = Moonwalk()) -> dict[str, Any]:
    """Compile one gradient of ``method`` and read XLA's memory analysis.

    The compiled function maps (parameters, x, y) to (loss, grads, self-check), the outputs of
    :func:`moonwalk_core.jax.gradient`. The checks and a ``checkpoint_every="auto"`` plan are
    made first, outside the compiled function.

    Returns:
        ``temp_bytes`` (XLA's temporary buffers: the peak working memory beyond arguments and
        outputs), ``argument_bytes``, ``output_bytes``, ``generated_code_bytes``,
        ``compile_seconds`` and ``source`` (the label of these numbers).
    """
    plan = prepare(model, loss_fn, x, y, method)

    def f(params: dict[str, Array], x: Array, y: Array) -> tuple[Array, dict[str, Array], Any]:
        result = run(model.with_parameters(params), loss_fn, x, y, method, plan)
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
