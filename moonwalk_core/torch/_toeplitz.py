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

__all__ = ["FilterInverse", "inverse_series", "filter_inverses", "anticausal_solve"]


class FilterInverse(NamedTuple):
    """What :func:`anticausal_solve` needs for one filter and block length.

    ``spectrum``: conj(rfft(G_0..G_{n-1})) over ``2n`` points, (n + 1, C, C), complex;
    ``boundary``: ((k-1)C, (k-1)C), maps the k-1 values after a block to the correction of its
    last k-1 right-hand sides; ``steps``: n.
    """

    spectrum: Tensor
    boundary: Tensor
    steps: int


def inverse_series(taps: Tensor, n: int) -> Tensor:
    """``G_0..G_{n-1}`` with ``G(z) W(z) = I``; ``taps`` (L, k, C, C) holds W_0..W_{k-1} of L
    filters.

    Doubling: with G_0..G_{m-1} known, ``G_m(z) W(z) = I + z^m R(z)`` where R has k-1
    coefficients ``R_i = sum_{l>i} G_{m+i-l} W_l``; the next m coefficients are
    ``-(R G)_{0..m-1}``. Each step is two batched products. Returns (L, n, C, C).
    """
    n_filters, k, c, _ = taps.shape
    g = torch.linalg.inv(taps[:, 0]).unsqueeze(1)  # (L, 1, C, C)
    if k == 1:
        return torch.cat([g, g.new_zeros(n_filters, n - 1, c, c)], 1)
    later = taps[:, 1:].reshape(n_filters, (k - 1) * c, c)  # [W_1; ...; W_{k-1}]
    # hankel[i, j] picks G_{m-1+i-j} from [0, G_{m-k+1}, ..., G_{m-1}] (index 0: zero, j > i)
    rows = [[(k - 1 + a - b) if b >= a else 0 for b in range(k - 1)] for a in range(k - 1)]
    hankel = torch.tensor(rows, device=taps.device)
    m = 1
    while m < n:
        zero = g.new_zeros(n_filters, max(k - m, 1), c, c)
        padded = torch.cat([zero, g[:, -(k - 1):]], 1)[:, -k:]  # [0, G_{m-k+1..m-1}]
        # R_i = sum_{b >= i} G_{m-1+i-b} W_{b+1}: one (k-1)C x (k-1)C by (k-1)C x C product
        blocks = padded[:, hankel]  # (L, k-1, k-1, C, C)
        r = blocks.transpose(2, 3).reshape(n_filters, (k - 1) * c, (k - 1) * c) @ later
        # next[j] = -sum_i R_i G_{j-i}: one product of [R_{k-2} .. R_0] with stacked windows
        r_rev = r.view(n_filters, k - 1, c, c).flip(1).transpose(1, 2).reshape(
            n_filters, 1, c, (k - 1) * c)
        shifted = torch.cat([g.new_zeros(n_filters, k - 2, c, c), g], 1)
        windows = shifted.unfold(1, k - 1, 1).permute(0, 1, 4, 2, 3).reshape(
            n_filters, m, (k - 1) * c, c)  # window j: G_{j-k+2} .. G_j stacked
        g = torch.cat([g, -(r_rev @ windows)], 1)
        m *= 2
    return g[:, :n]


def filter_inverses(taps: Tensor, steps: int) -> list[FilterInverse]:
    """One :class:`FilterInverse` per filter of ``taps`` (L, k, C, C), block length ``steps``,
    computed together."""
    n_filters, k, c, _ = taps.shape
    g = inverse_series(taps, steps)  # (L, n, C, C)
    spectrum = torch.fft.rfft(g, n=2 * steps, dim=1).conj()  # (L, n + 1, C, C)
    # boundary[j, q]: the contribution of the j-th value after the block to right-hand side
    # steps - (k-1) + q, through W_l with l = j - q + k - 1 (only j <= q)
    boundary = taps.new_zeros(n_filters, k - 1, c, k - 1, c)
    for q in range(k - 1):
        for j in range(q + 1):
            boundary[:, j, :, q, :] = taps[:, j - q + k - 1]
    boundary = boundary.view(n_filters, (k - 1) * c, (k - 1) * c)
    return [FilterInverse(spectrum[i], boundary[i], steps) for i in range(n_filters)]


def anticausal_solve(u: Tensor, after: Tensor | None, inverse: FilterInverse) -> Tensor:
    """``h`` with ``u[s] = sum_l h[s+l] W_l`` in every row of ``u`` (rows, n, C), given the
    k-1 values after each row (``after``, (rows, k-1, C); None when they are zero)."""
    rows, n, c = u.shape
    if after is not None:
        k1 = after.shape[1]
        m = min(n, k1)  # a block shorter than k-1 steps: every step reads values after it
        correction = torch.matmul(after.reshape(rows, -1), inverse.boundary).view(rows, k1, c)
        u = u.clone()
        u[:, n - m:].sub_(correction[:, k1 - m:])
    spectrum = torch.fft.rfft(u, n=2 * n, dim=1)  # (rows, n + 1, C)
    product = torch.matmul(spectrum.transpose(0, 1), inverse.spectrum)  # (n + 1, rows, C)
    return torch.fft.irfft(product.transpose(0, 1), n=2 * n, dim=1)[:, :n]
