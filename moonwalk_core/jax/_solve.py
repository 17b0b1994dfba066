"""Right inverses applied as products: ``v`` with ``v @ A = u`` for a wide or square ``A``;
and the dtype the solvers compute in (docs/method.md, 'bfloat16')."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax import Array

__all__ = ["right_solve", "right_inverse", "solve_dtype"]


def solve_dtype(dtype: Any) -> jnp.dtype:
    """The dtype a vijp's factorizations, inverses and FFTs compute in: float32 for bfloat16
    (XLA's CPU LAPACK calls and FFTs take float32 or float64 only), the dtype itself
    otherwise. Results are cast back."""
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype == jnp.bfloat16 else dtype


def right_inverse(a: Array) -> Array:
    """The (n, m) matrix ``P`` with ``a @ P = I`` for ``a`` of shape (m, n), m <= n, full row rank.

    Square ``a``: ``a⁻¹`` by one LU solve. Wide ``a``: the minimum-norm right inverse
    ``aᵀ (a aᵀ)⁻¹ = Q R⁻ᵀ`` through a QR factorization of ``aᵀ`` (``a = Rᵀ Qᵀ``), which avoids
    squaring the condition number as the normal equations would. Weight-sized (never a
    Jacobian): the layer's vijp then is one matmul. Computed in :func:`solve_dtype`, returned
    in ``a``'s dtype.
    """
    m, n = a.shape
    dtype, a = a.dtype, a.astype(solve_dtype(a.dtype))
    eye = jnp.eye(m, dtype=a.dtype)
    if m == n:
        return jnp.linalg.solve(a, eye).astype(dtype)
    q, r = jnp.linalg.qr(a.T)  # q: (n, m), r: (m, m)
    return (q @ jsl.solve_triangular(r, eye, lower=False).T).astype(dtype)


def right_solve(a: Array, u: Array) -> Array:
    """The ``v`` with ``v @ a = u`` for ``a`` of shape (m, n), m <= n, full row rank.

    ``u`` has shape (..., n). Computed as ``u @ right_inverse(a)``.

    # Note: [explicit right inverse]
    XLA's CPU LU and triangular solves with many right-hand sides (every time step of a batch)
    ran ~10x slower than the layer's forward; the m x m inverse is weight-sized and its product
    is one matmul. Backward error stays of order κ(a)·eps, as with the solve.
    """
    return u @ right_inverse(a)
