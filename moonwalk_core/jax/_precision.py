"""float32 that means IEEE float32 in JAX (docs/measurement.md, 'Precision').

XLA on GPUs computes float32 matmuls and convolutions at TF32-like precision by default
(``jax_default_matmul_precision`` unset); measurements and the pipeline run under "highest".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import jax

__all__ = ["ieee_float32", "precision_flags"]


def precision_flags() -> dict[str, object]:
    """The setting that decides what a float32 product means, as recorded in environment
    files (None: XLA's default, TF32-like on GPUs)."""
    return {"jax_default_matmul_precision": jax.config.jax_default_matmul_precision}


@contextmanager
def ieee_float32() -> Iterator[dict[str, object]]:
    """Within the block, float32 matmuls and convolutions run at full precision; restored on
    exit. Yields the flags in force."""
    with jax.default_matmul_precision("highest"):
        yield precision_flags()
