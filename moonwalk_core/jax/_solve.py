"""Right inverses applied as products: ``v`` with ``v @ A = u`` for a wide or square ``A``."""

from __future__ import annotations

import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax import Array

__all__ = ["right_solve", "right_inverse"]


def right_inverse(a: Array) -> Array:
    """The (n, m) matrix ``P`` with ``a @ P = I`` for ``a`` of shape (m, n), m <= n, full row rank.

    Square ``a``: ``a⁻¹`` by one LU solve. Wide ``a``: the minimum-norm right inverse
    ``aᵀ (a aᵀ)⁻¹ = Q R⁻ᵀ`` through a QR factorization of ``aᵀ`` (``a = Rᵀ Qᵀ``), which avoids
    squaring the condition number as the normal equations would. Weight-sized (never a
    Jacobian): the layer's vijp then is one matmul.
    """
    m, n = a.shape
    eye = jnp.eye(m, dtype=a.dtype)
    if m == n:
        return jnp.linalg.solve(a, eye)
    q, r = jnp.linalg.qr(a.T)  # q: (n, m), r: (m, m)
    return q @ jsl.solve_triangular(r, eye, lower=False).T


def right_solve(a: Array, u: Array) -> Array:
    """The ``v`` with ``v @ a = u`` for ``a`` of shape (m, n), m <= n, full row rank.

    ``u`` has shape (..., n). Computed as ``u @ right_inverse(a)``.

    # Note: [explicit right inverse]
    XLA's CPU LU and triangular solves with many right-hand sides (every time step of a batch)
    ran ~10x slower than the layer's forward; the m x m inverse is weight-sized and its product
    is one matmul. Backward error stays of order κ(a)·eps, as with the solve.
    """
    return u @ right_inverse(a)
