"""Right inverses applied as products: ``v`` with ``v @ A = u`` for a wide or square ``A``;
and the dtype the solvers compute in (docs/method.md, 'bfloat16')."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["right_solve", "solve_dtype"]


def solve_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a vijp's factorizations, inverses and FFTs compute in: float32 for bfloat16
    (torch has no bfloat16 LU, triangular solve or FFT on the CPU, and no bfloat16 FFT on
    GPUs), the dtype itself otherwise. Results are cast back to ``dtype``."""
    return torch.float32 if dtype == torch.bfloat16 else dtype


def right_solve(a: Tensor, u: Tensor) -> Tensor:
    """The ``v`` with ``v @ a = u`` for ``a`` of shape (m, n), m <= n, full row rank.

    Square ``a``: one LU solve, unchecked (``solve_ex``: reading its error code would wait for
    the device; a singular ``a`` shows as non-finite gradients, which ``gradient`` reports).
    Wide ``a``: the minimum-norm solution through a QR factorization of ``aᵀ`` (``a = Rᵀ Qᵀ``,
    so ``v = u Q R⁻ᵀ``), which avoids squaring the condition number as the normal equations
    ``u aᵀ (a aᵀ)⁻¹`` would. ``u`` has shape (..., n). Computed in :func:`solve_dtype`; the
    result has ``u``'s dtype.
    """
    m, n = a.shape
    work = solve_dtype(u.dtype)
    a, dtype, u = a.to(work), u.dtype, u.to(work)
    if m == n:
        return torch.linalg.solve_ex(a, u, left=False)[0].to(dtype)  # no host sync
    q, r = torch.linalg.qr(a.T)  # q: (n, m), r: (m, m)
    return torch.linalg.solve_triangular(r.T, u @ q, upper=False, left=False).to(dtype)
