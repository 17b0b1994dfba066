"""Right inverses applied as products: ``v`` with ``v @ A = u`` for a wide or square ``A``."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["right_solve"]


def right_solve(a: Tensor, u: Tensor) -> Tensor:
    """The ``v`` with ``v @ a = u`` for ``a`` of shape (m, n), m <= n, full row rank.

    Square ``a``: one LU solve. Wide ``a``: the minimum-norm solution through a QR factorization
    of ``aᵀ`` (``a = Rᵀ Qᵀ``, so ``v = u Q R⁻ᵀ``), which avoids squaring the condition number
    as the normal equations ``u aᵀ (a aᵀ)⁻¹`` would. ``u`` has shape (..., n).
    """
    m, n = a.shape
    if m == n:
        return torch.linalg.solve(a, u, left=False)
    q, r = torch.linalg.qr(a.T)  # q: (n, m), r: (m, m)
    return torch.linalg.solve_triangular(r.T, u @ q, upper=False, left=False)
