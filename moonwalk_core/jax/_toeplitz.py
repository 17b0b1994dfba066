"""The FFT solver of a causal conv's vijp in JAX: the inverse filter by doubling, applied per
block as one FFT correlation, so the compiled Phase III has no loop over time steps (the torch
module ``moonwalk_core/torch/_toeplitz.py`` has the derivation; docs/method.md, 'The FFT
solver').
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from ._solve import solve_dtype

__all__ = ["FilterInverse", "filter_inverse", "inverse_series", "anticausal_solve"]


class FilterInverse(NamedTuple):
    """``spectrum``: conj(rfft(G_0..G_{n-1})) over 2n points, (n + 1, C, C); ``boundary``:
    ((k-1)C, (k-1)C), the k-1 values after a block -> its last right-hand sides."""

    spectrum: Array
    boundary: Array


def inverse_series(taps: Array, n: int) -> Array:
    """``G_0..G_{n-1}`` with ``G(z) W(z) = I`` for ``taps`` (k, C, C) = W_0..W_{k-1}, by
    doubling (log2 n steps, unrolled at trace time): (n, C, C)."""
    k, c, _ = taps.shape
    g = jnp.linalg.inv(taps[0])[None]
    m = 1
    while m < n:
        if k > 1:
            padded = jnp.concatenate([jnp.zeros((max(k - 1 - m, 0), c, c), g.dtype), g])
            last = padded[-(k - 1):]  # G_{m-k+1} .. G_{m-1}
            # R_i = sum_{l > i} G_{m+i-l} W_l
            r = jnp.stack([sum(last[k - 1 + i - lag] @ taps[lag] for lag in range(i + 1, k))
                           for i in range(k - 1)])
            shifted = jnp.concatenate([jnp.zeros((k - 2, c, c), g.dtype), g])
            nxt = -sum(jnp.einsum("ab,jbc->jac", r[i], shifted[k - 2 - i:k - 2 - i + m])
                       for i in range(k - 1))
        else:
            nxt = jnp.zeros_like(g)
        g = jnp.concatenate([g, nxt])
        m *= 2
    return g[:n]


def filter_inverse(taps: Array, steps: int) -> FilterInverse:
    """The :class:`FilterInverse` of ``taps`` (k, C, C), ascending lags, for blocks of
    ``steps`` chain steps, in :func:`~._solve.solve_dtype` (float32 for bfloat16 taps)."""
    taps = taps.astype(solve_dtype(taps.dtype))
    k, c, _ = taps.shape
    g = inverse_series(taps, steps)
    spectrum = jnp.conj(jnp.fft.rfft(g, n=2 * steps, axis=0))
    boundary = jnp.zeros((k - 1, c, k - 1, c), taps.dtype)
    for q in range(k - 1):
        for j in range(q + 1):
            boundary = boundary.at[j, :, q, :].set(taps[j - q + k - 1])
    return FilterInverse(spectrum, boundary.reshape((k - 1) * c, (k - 1) * c))


def anticausal_solve(u: Array, after: Array | None, inverse: FilterInverse) -> Array:
    """``h`` with ``u[s] = sum_l h[s+l] W_l`` along axis -2 of ``u`` (..., n, C), given the k-1
    values after each row (``after`` (..., k-1, C), None when zero). Computed in the
    inverse's dtype (float32 for bfloat16 ``u``: XLA has no bfloat16 FFT), returned in
    ``u``'s."""
    n, c = u.shape[-2:]
    dtype = u.dtype
    u = u.astype(inverse.boundary.dtype)
    if after is not None:
        after = after.astype(inverse.boundary.dtype)
        k1 = after.shape[-2]
        m = min(n, k1)
        corr = (after.reshape(*after.shape[:-2], k1 * c) @ inverse.boundary).reshape(
            *after.shape[:-2], k1, c)[..., k1 - m:, :]
        u = u.at[..., n - m:, :].add(-corr)
    spectrum = jnp.fft.rfft(u, n=2 * n, axis=-2)  # (..., n + 1, C)
    product = jnp.einsum("...fc,fcd->...fd", spectrum, inverse.spectrum)
    return jnp.fft.irfft(product, n=2 * n, axis=-2)[..., :n, :].astype(dtype)
