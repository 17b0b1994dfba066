"""float32 that means IEEE float32 in JAX (docs/measurement.md, 'Precision').

XLA on GPUs computes float32 matmuls and convolutions at TF32-like precision by default
(``jax_default_matmul_precision`` unset); measurements and the pipeline run under "highest".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import jax
import jax.numpy as jnp

from ..methods import TF32_EPS

__all__ = ["ieee_float32", "precision_flags", "working_epsilon"]


def precision_flags() -> dict[str, object]:
    """The setting that decides what a float32 product means, as recorded in environment
    files (None: XLA's default, TF32-like on GPUs)."""
    return {"jax_default_matmul_precision": jax.config.jax_default_matmul_precision}


# jax_default_matmul_precision values that keep float32 products IEEE float32 on a GPU
_FULL = ("highest", "float32", "Precision.HIGHEST")


def working_epsilon(dtype: object, platform: str) -> float:
    """The epsilon Phase III's products actually run at: the dtype's own, except float32 on a
    GPU under XLA's default precision (TF32-like) or a reduced one."""
    eps = float(jnp.finfo(dtype).eps)
    if jnp.dtype(dtype) != jnp.float32 or platform != "gpu":
        return eps
    precision = jax.config.jax_default_matmul_precision
    if precision is not None and str(precision) in _FULL:
        return eps
    if precision is not None and "bfloat16" in str(precision).lower():
        return float(jnp.finfo(jnp.bfloat16).eps)
    return TF32_EPS


@contextmanager
def ieee_float32() -> Iterator[dict[str, object]]:
    """Within the block, float32 matmuls and convolutions run at full precision; restored on
    exit. Yields the flags in force."""
    with jax.default_matmul_precision("highest"):
        yield precision_flags()
