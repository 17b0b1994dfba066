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

__all__ = ["compiled_memory", "device_memory_peak", "SOURCE", "LIVE_SOURCE"]

SOURCE = "XLA compiled memory analysis (temp bytes)"
LIVE_SOURCE = "device allocator peak (jax Device.memory_stats, peak_bytes_in_use)"


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


def device_memory_peak(model: Any, loss_fn: Callable[[Array, Array], Array], x: Array, y: Array,
                       method: Method = Moonwalk()) -> dict[str, Any] | None:
    """The live peak of the device allocator over one jitted gradient (after a warm-up call,
    so compilation is not counted), beside :func:`compiled_memory`'s static temp bytes.

    The allocator's peak only ever grows in a process, so a meaningful figure needs a fresh
    process per method, with ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` set before JAX starts
    (otherwise the allocator reserves most of the device up front). None where the device keeps
    no statistics (the CPU backend).
    """
    device = jax.devices()[0]
    stats = device.memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    plan = prepare(model, loss_fn, x, y, method)

    @jax.jit
    def f(params: dict[str, Array], x: Array, y: Array) -> tuple[Array, dict[str, Array]]:
        result = run(model.with_parameters(params), loss_fn, x, y, method, plan)
        return result.loss, result.grads

    jax.block_until_ready(f(model.parameters(), x, y))  # warm-up: compile, allocate
    before = device.memory_stats()["bytes_in_use"]
    jax.block_until_ready(f(model.parameters(), x, y))
    stats = device.memory_stats()
    return {"peak_bytes": int(stats["peak_bytes_in_use"]), "bytes_in_use_before": int(before),
            "device": str(device), "source": LIVE_SOURCE}
