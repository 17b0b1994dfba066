"""Right inverses applied as products: ``v`` with ``v @ A = u`` for a wide or square ``A``."""

from __future__ import annotations

import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax import Array

__all__ = ["right_solve"]


def right_solve(a: Array, u: Array) -> Array:
    """The ``v`` with ``v @ a = u`` for ``a`` of shape (m, n), m <= n, full row rank.

    Square ``a``: one LU solve. Wide ``a``: the minimum-norm solution through a QR factorization
    of ``aᵀ`` (``a = Rᵀ Qᵀ``, so ``v = u Q R⁻ᵀ``), which avoids squaring the condition number
    as the normal equations ``u aᵀ (a aᵀ)⁻¹`` would. ``u`` has shape (..., n).
    """
    m, n = a.shape
    lead = u.shape[:-1]
    flat = u.reshape(-1, n)
    if m == n:
        # v a = u  <=>  aᵀ vᵀ = uᵀ
        v = jnp.linalg.solve(a.T, flat.T).T
    else:
        q, r = jnp.linalg.qr(a.T)  # q: (n, m), r: (m, m); v Rᵀ = u Q  <=>  R vᵀ = (u Q)ᵀ
        v = jsl.solve_triangular(r, (flat @ q).T, lower=False).T
    return v.reshape(*lead, m)
