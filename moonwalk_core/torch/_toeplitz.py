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

The coefficients come by doubling (:func:`inverse_series`): log2(n) steps, each two batched
products with powers of the filter's block companion matrix, exact algebra (no truncated
iteration); the causal convs of a model that share the taps' shape are done in the same
batched steps.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ._solve import solve_dtype

__all__ = ["FilterInverse", "inverse_series", "filter_inverses", "filter_bytes", "correlate"]


class FilterInverse(NamedTuple):
    """What :func:`correlate` needs for one filter and block length.

    ``spectrum``: conj(rfft(G_0..G_{n-1})) over ``2n`` points, (n + 1, C, C), complex;
    ``boundary``: ((k-1)C, (k-1)C), maps the k-1 values after a block to the correction of its
    last k-1 right-hand sides; ``steps``: n.
    """

    spectrum: Tensor
    boundary: Tensor
    steps: int


def upper_block_toeplitz(taps: Tensor) -> Tensor:
    """The ((k-1)C, (k-1)C) matrices whose block (i, a) is ``W_{i+k-1-a}`` for a >= i and zero
    below, from ``taps`` (L, k, C, C) in descending lag order (``taps[:, j] = W_{k-1-j}``, so
    block (i, a) is ``taps[:, a - i]``): a fixed number of launches for any k."""
    n_filters, k, c, _ = taps.shape
    if k == 1:
        return taps.new_zeros(n_filters, 0, 0)
    zero = taps.new_zeros(n_filters, c, c)
    grid = [taps[:, a - i] if a >= i else zero for i in range(k - 1) for a in range(k - 1)]
    stacked = torch.stack(grid, 1).view(n_filters, k - 1, k - 1, c, c)
    return stacked.transpose(2, 3).reshape(n_filters, (k - 1) * c, (k - 1) * c)


def _doubled_length(n: int) -> int:
    """n rounded up to a power of two: the coefficients the doubling computes."""
    return 1 << max(n - 1, 0).bit_length()


def filter_bytes(k: int, c: int, steps: int, dtype: torch.dtype) -> int:
    """Bytes :func:`filter_inverses` holds per filter while it makes a batch: the doubling's
    states ((k-1)C² per coefficient), rfft's zero-padded input (2nC²) and the complex spectrum
    (2(n+1)C² values), in :func:`~._solve.solve_dtype`."""
    values = ((k - 1) * _doubled_length(steps) + 4 * steps + 2) * c * c
    return values * solve_dtype(dtype).itemsize


def inverse_series(taps: Tensor, n: int) -> Tensor:
    """``G_0..G_{n-1}`` with ``G(z) W(z) = I``; ``taps`` (L, k, C, C) holds the taps of L
    filters in descending lag order, ``W_{k-1}, ..., W_0`` (as the layers' ``filter_taps``).

    The coefficients obey ``G_j = sum_{l=1}^{k-1} G_{j-l} M_l`` with ``M_l = -W_l G_0``, so the
    row of states ``x_j = [G_{j-k+2}, ..., G_{j-1}, G_j]`` (C, (k-1)C) advances by one product
    with the block companion matrix A: ``x_{j+1} = x_j A`` (A's last block column stacks
    ``M_{k-1}, ..., M_1``, identities sit below its block diagonal). Doubling: with
    ``x_0..x_{m-1}`` stacked, ``x_m..x_{2m-1}`` are that stack times ``A^m``, and
    ``A^{2m} = (A^m)^2``: two batched products per doubling step, whatever L, k and m, each
    writing into one buffer. Returns (L, n, C, C), a view of that buffer.
    """
    n_filters, k, c, _ = taps.shape
    g0, _ = torch.linalg.inv_ex(taps[:, -1])  # checked before the phases: no host sync
    if k == 1:
        return torch.cat([g0[:, None], g0.new_zeros(n_filters, n - 1, c, c)], 1)
    size = _doubled_length(n)
    width = (k - 1) * c
    power = taps.new_zeros(n_filters, width, width)
    power[:, :, -c:].baddbmm_(taps[:, :-1].reshape(n_filters, width, c), g0, beta=0, alpha=-1)
    power.diagonal(offset=-c, dim1=1, dim2=2).fill_(1)
    states = taps.new_zeros(n_filters, size * c, width)  # x_j in rows jC..(j+1)C
    states[:, :c, -c:] = g0
    m = 1
    while m < n:
        states[:, m * c:2 * m * c].baddbmm_(states[:, :m * c], power, beta=0)
        if 2 * m < n:
            power = torch.bmm(power, power)
        m *= 2
    return states.view(n_filters, size, c, width)[:, :n, :, -c:]


def filter_inverses(taps: Tensor, steps: int) -> list[FilterInverse]:
    """One :class:`FilterInverse` per filter of ``taps`` (L, k, C, C, descending lag order as
    the layers' ``filter_taps``), block length ``steps``, computed together, in
    :func:`~._solve.solve_dtype` (float32 for bfloat16 taps)."""
    taps = taps.to(solve_dtype(taps.dtype))
    n_filters, k, c, _ = taps.shape
    g = inverse_series(taps, steps)  # (L, n, C, C)
    spectrum = torch.fft.rfft(g, n=2 * steps, dim=1).conj()  # (L, n + 1, C, C)
    # boundary[j, q]: the contribution of the j-th value after the block to right-hand side
    # steps - (k-1) + q, through W_l with l = j - q + k - 1 (only j <= q)
    boundary = upper_block_toeplitz(taps)
    return [FilterInverse(spectrum[i], boundary[i], steps) for i in range(n_filters)]


def correlate(padded: Tensor, inverse: FilterInverse) -> Tensor:
    """The block solve on right-hand sides already zero-padded to ``2n`` steps,
    ``padded`` (rows, 2n, C) in the inverse's dtype: (rows, 2n, C) whose first n steps are h
    (the rest is scratch). rfft, one batched per-frequency product, irfft: three launches."""
    spectrum = torch.fft.rfft(padded, dim=1)  # (rows, n + 1, C)
    product = torch.matmul(spectrum.transpose(0, 1), inverse.spectrum)  # (n + 1, rows, C)
    return torch.fft.irfft(product.transpose(0, 1), n=2 * inverse.steps, dim=1)
