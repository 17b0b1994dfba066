"""The FFT solver of a causal filter's vijp: the inverse filter, applied per block by FFT
(docs/method.md, 'The FFT solver').

The vijp of a causal filter solves, backwards in time, ``u[s] = sum_l h[s + l] W_l`` for h (row
vectors over channels, lags ``l = 0..k-1``). Its solution is the anti-causal filter
``h[s] = sum_j u[s + j] G_j`` whose taps are the power-series coefficients of ``W(z)⁻¹``
(``G(z) W(z) = I``). Within a block of ``n`` positions only ``G_0..G_{n-1}`` matter, and the
``k - 1`` positions after the block (the boundary fragment, or zeros past the end) move to the
right-hand side. So one block is one correlation with a fixed filter: rfft, one batched
per-frequency C x C product, irfft; all blocks and batch rows at once, with a number of kernel
launches that depends on neither the length nor the number of blocks.

The coefficients come by doubling (:func:`inverse_series`): log2(n) steps, each a few batched
products, exact algebra (no truncated iteration); every causal conv of a model that shares the
taps' shape is done in the same batched steps.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ._solve import solve_dtype

__all__ = ["FilterInverse", "inverse_series", "filter_inverses", "anticausal_solve",
           "boundary_correction"]


class FilterInverse(NamedTuple):
    """What :func:`anticausal_solve` needs for one filter and block length.

    ``spectrum``: conj(rfft(G_0..G_{n-1})) over ``2n`` points, (n + 1, C, C), complex;
    ``boundary``: ((k-1)C, (k-1)C), maps the k-1 values after a block to the correction of its
    last k-1 right-hand sides; ``steps``: n.
    """

    spectrum: Tensor
    boundary: Tensor
    steps: int


def upper_block_toeplitz(blocks: Tensor) -> Tensor:
    """The ((k-1)C, (k-1)C) matrices whose block (i, a) is ``blocks[:, i + k - 1 - a]`` for
    a >= i and zero below, from ``blocks`` (L, k, C, C): a fixed number of launches for any k."""
    n_filters, k, c, _ = blocks.shape
    if k == 1:
        return blocks.new_zeros(n_filters, 0, 0)
    zero = blocks.new_zeros(n_filters, c, c)
    grid = [blocks[:, i + k - 1 - a] if a >= i else zero
            for i in range(k - 1) for a in range(k - 1)]
    stacked = torch.stack(grid, 1).view(n_filters, k - 1, k - 1, c, c)
    return stacked.transpose(2, 3).reshape(n_filters, (k - 1) * c, (k - 1) * c)


def inverse_series(taps: Tensor, n: int) -> Tensor:
    """``G_0..G_{n-1}`` with ``G(z) W(z) = I``; ``taps`` (L, k, C, C) holds W_0..W_{k-1} of L
    filters.

    Doubling: with G_0..G_{m-1} known, ``G_m(z) W(z) = I + z^m R(z)`` where R has k-1
    coefficients ``R_i = sum_{l>i} G_{m+i-l} W_l``; the next m coefficients are
    ``-(R G)_{0..m-1}``. The transposed coefficients ``G_jᵀ`` are stacked in one buffer,
    (L, (k-2+n')·C, C) after k-2 zero blocks (G_{-1}, ... read as zeros), so that every operand
    is a view of it: a step is one product for R and k-1 for the next m coefficients, whatever
    L and m. Returns (L, n, C, C).
    """
    n_filters, k, c, _ = taps.shape
    g0, _ = torch.linalg.inv_ex(taps[:, 0])  # checked before the phases: no host sync
    if k == 1:
        return torch.cat([g0[:, None], g0.new_zeros(n_filters, n - 1, c, c)], 1)
    size = 1 << max(n - 1, 0).bit_length()  # n rounded up to a power of two
    lead = k - 2
    buf = taps.new_zeros(n_filters, (lead + size) * c, c)
    buf[:, lead * c:(lead + 1) * c] = g0.transpose(1, 2)

    def coefficients(first: int, count: int) -> Tensor:  # [G_firstᵀ; ...], a view
        return buf[:, (lead + first) * c:(lead + first + count) * c]

    # [-R_0ᵀ; ...; -R_{k-2}ᵀ] = lower @ [G_{m-k+1}ᵀ; ...; G_{m-1}ᵀ], block (i, a) of lower =
    # -W_{i+k-1-a}ᵀ for a >= i
    lower = upper_block_toeplitz(-taps.transpose(2, 3))
    m = 1
    while m < n:
        r = torch.bmm(lower, coefficients(m - k + 1, k - 1))  # (L, (k-1)C, C)
        # G_{m+j}ᵀ = sum_i G_{j-i}ᵀ (-R_iᵀ): k-1 products of shifted views
        out = coefficients(m, m)
        out.baddbmm_(coefficients(0, m), r[:, :c], beta=0)
        for i in range(1, k - 1):
            out.baddbmm_(coefficients(-i, m), r[:, i * c:(i + 1) * c])
        m *= 2
    return buf[:, lead * c:(lead + n) * c].view(n_filters, n, c, c).transpose(2, 3)


def filter_inverses(taps: Tensor, steps: int) -> list[FilterInverse]:
    """One :class:`FilterInverse` per filter of ``taps`` (L, k, C, C), block length ``steps``,
    computed together, in :func:`~._solve.solve_dtype` (float32 for bfloat16 taps)."""
    taps = taps.to(solve_dtype(taps.dtype))
    n_filters, k, c, _ = taps.shape
    g = inverse_series(taps, steps)  # (L, n, C, C)
    spectrum = torch.fft.rfft(g, n=2 * steps, dim=1).conj()  # (L, n + 1, C, C)
    # boundary[j, q]: the contribution of the j-th value after the block to right-hand side
    # steps - (k-1) + q, through W_l with l = j - q + k - 1 (only j <= q)
    boundary = upper_block_toeplitz(taps)
    return [FilterInverse(spectrum[i], boundary[i], steps) for i in range(n_filters)]


def boundary_correction(after: Tensor, inverse: FilterInverse, n: int) -> Tensor:
    """What the k-1 values after a block, ``after`` (..., k-1, C), add to the block's
    right-hand sides: (..., n, C), nonzero only on the last min(n, k-1) steps; in the
    inverse's dtype (float32 for bfloat16 values)."""
    *lead, k1, c = after.shape
    m = min(n, k1)  # a block shorter than k-1 steps: every step reads values after it
    after = after.to(inverse.boundary.dtype)
    correction = torch.matmul(after.reshape(*lead, k1 * c), inverse.boundary
                              ).view(*lead, k1, c)[..., k1 - m:, :]
    return torch.nn.functional.pad(correction, (0, 0, n - m, 0))


def anticausal_solve(u: Tensor, inverse: FilterInverse) -> Tensor:
    """``h`` with ``u[s] = sum_l h[s+l] W_l`` in every row of ``u`` (rows, n, C), the values
    after each row being zero (a block's boundary values are moved into ``u`` first with
    :func:`boundary_correction`). Computed in the inverse's dtype (float32 for bfloat16
    ``u``: torch has no bfloat16 FFT), returned in ``u``'s."""
    n, dtype = u.shape[1], u.dtype
    spectrum = torch.fft.rfft(u.to(inverse.boundary.dtype), n=2 * n, dim=1)  # (rows, n + 1, C)
    product = torch.matmul(spectrum.transpose(0, 1), inverse.spectrum)  # (n + 1, rows, C)
    return torch.fft.irfft(product.transpose(0, 1), n=2 * n, dim=1)[:, :n].to(dtype)
