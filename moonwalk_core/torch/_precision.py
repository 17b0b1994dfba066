"""float32 that means IEEE float32 (docs/measurement.md, 'Precision').

On Ampere and newer GPUs, cuDNN convolutions use TF32 (10-bit mantissa) by default, and matmuls
may too. Moonwalk's Phase III amplifies rounding error by the layers' condition numbers, so
measurements and the pipeline run with TF32 off and record the flags they ran with; elsewhere the
planner takes the epsilon the products actually run at (:func:`working_epsilon`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..methods import TF32_EPS

__all__ = ["ieee_float32", "precision_flags", "working_epsilon"]


def precision_flags() -> dict[str, object]:
    """The flags that decide what a float32 product means, as recorded in environment files."""
    return {"torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "torch.float32_matmul_precision": torch.get_float32_matmul_precision()}


def working_epsilon(dtype: torch.dtype, device: torch.device | str) -> float:
    """The epsilon Phase III's products actually run at: the dtype's own, except float32 on a
    CUDA device while TF32 is allowed for convolutions or matmuls (then TF32's)."""
    eps = torch.finfo(dtype).eps
    if dtype != torch.float32 or torch.device(device).type != "cuda":
        return eps
    tf32 = (torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32
            or torch.get_float32_matmul_precision() != "highest")
    return max(eps, TF32_EPS) if tf32 else eps


@contextmanager
def ieee_float32() -> Iterator[dict[str, object]]:
    """Within the block, float32 matmuls and convolutions are IEEE float32 (TF32 off); the
    previous flags are restored on exit, also after an exception. Yields the flags in force."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield precision_flags()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])
