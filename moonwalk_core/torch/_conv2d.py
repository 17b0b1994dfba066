"""Stride-1 C -> C 2D convolutions with an exact vijp: one class per algorithm (docs/conv2d.md).

Weight (C_out, C_in, k, k) in torch's cross-correlation layout; the centre ("lag-0") tap is
``W_c = weight[..., p, p]`` with ``p = k // 2``, and tap (i, j) reads the input at offset
``(i - p, j - p)``: ``x_out[r, c] = b + sum_{i,j} W_ij x_in[r + i - p, c + j - p]``.

* :class:`MaskedConv2d` (``{"type": "conv2d", "mode": "masked"}``, the default): a causal
  raster-order mask keeps only the taps whose offset comes before the centre in raster order
  (every row above, the columns left of the centre in its own row) plus the centre itself; zero
  padding. Then ``h_in[s] = h_out[s] W_c + sum_{taps before the centre} h_out[s - offset] W_ij``,
  where every ``s - offset`` comes *after* s in raster order, so h_out is recovered by
  substitution in reverse raster order: ``h_out[s] = h_in[s] W_c⁻¹ - sum h_out[s - offset] T_ij``
  with the normalized taps ``T_ij = W_ij W_c⁻¹``. The solve runs row by row from the bottom: the
  rows below enter through one small convolution, then a right-to-left recurrence along the row
  (tail p). With ``block_size = b`` (Moonwalk's block_size, reused as *rows per block*), Phase II
  stores h_out in the p rows after each block of b rows (boundary fragments, C·p·W numbers per
  block), so all blocks are solved independently and at once, and the error restarts from exact
  values.
* :class:`CircularConv2d` (``"mode": "circular"``): every tap, circular padding. The layer is a
  circular convolution, which the 2D DFT diagonalizes: with
  ``K̂(ω) = sum_ij W_ij e^{-iω·offset_ij}`` (C x C per frequency), ``ĥ_in(ω) = ĥ_out(ω) K̂(ω)``,
  so ``ĥ_out(ω) = ĥ_in(ω) K̂(ω)⁻¹``: one C x C solve per frequency of ``torch.fft.rfft2``, then
  ``irfft2``. Exact (round-off only), no fragment, no block size.

Both are surjective when the solves exist (W_c invertible; K̂(ω) invertible at every ω).
:class:`Conv2d` is their common base; ``Conv2d(weight, bias, mode=...)`` builds the class of
``mode``.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._blocks import boundary_blocks, solve_blocks
from .._conditioning import (
    causal_mask,
    circular_conv2d_condition,
    masked_conv2d_condition,
)
from .._constants import TAP_NORM_SUM
from ..arch import CONV2D_MODES, LayerSpec
from ._base import AbstractLayer, BuildContext, host
from ._solve import solve_dtype
from ._toeplitz import FilterInverse, correlate
from ._workspace import zeroed

__all__ = ["Conv2d", "MaskedConv2d", "CircularConv2d", "RowBoundaryFragment", "TAP_NORM_SUM"]


class RowBoundaryFragment(NamedTuple):
    """h_out in the p rows after each block of ``block_size`` rows but the last.

    ``values``: (B, n_blocks - 1, p, W, C), channels last; rows past the image are zero.
    """

    values: Tensor
    block_size: int


class Conv2d(AbstractLayer):
    """Stride-1 C -> C conv2d: the common base of :class:`MaskedConv2d` and
    :class:`CircularConv2d` (weights, init, padding); ``Conv2d(weight, bias, mode)`` builds the
    class of ``mode``.

    Attributes:
        mode: "masked" or "circular" (a class attribute of each final class).
    """

    type_name = "conv2d"
    surjective = True
    mode: ClassVar[str]

    def __new__(cls, *args: Any, **kwargs: Any) -> Conv2d:
        if cls is Conv2d:  # the constructor of the base picks the class of the mode
            mode = kwargs.get("mode", args[2] if len(args) > 2 else "masked")
            if mode not in _MODES:
                raise ValueError(f"Conv2d(mode={mode!r}): use one of {CONV2D_MODES}")
            cls = _MODES[mode]
        return super().__new__(cls)

    def __init__(self, weight: Tensor, bias: Tensor, mode: str | None = None) -> None:
        super().__init__()
        c_out, c_in, k, k2 = weight.shape
        if c_out != c_in or k != k2:
            raise ValueError(f"Conv2d weight {tuple(weight.shape)}: needs (C, C, k, k)")
        if mode is not None and mode != self.mode:
            raise ValueError(f"{type(self).__name__}(mode={mode!r}): this class is mode "
                             f"{self.mode!r}")
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    @classmethod
    @abc.abstractmethod
    def taps(cls, k: int) -> np.ndarray:
        """(k, k) bool: the taps this mode uses."""

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Conv2d:
        c, k = spec.in_shape[0], spec["kernel_size"]
        mask = cls.taps(k)
        p = k // 2
        if ctx.init == "orthogonal":
            w = ctx.empty(c, c, k, k).zero_()
            n_taps = int(mask.sum()) - 1
            std = TAP_NORM_SUM / max(n_taps, 1) / (2 * math.sqrt(c))  # ‖G‖ ≈ 2 std √c
            for i, j in zip(*np.nonzero(mask), strict=True):
                if (i, j) != (p, p):
                    w[..., i, j] = ctx.normal(c, c, std=std)
            w[..., p, p] = ctx.orthogonal(c, c)
            return cls(w, ctx.empty(c).zero_())
        bound = 1 / math.sqrt(c * k * k)  # torch's nn.Conv2d default
        w = ctx.uniform(c, c, k, k, bound=bound) * torch.as_tensor(mask).to(ctx.device, ctx.dtype)
        return cls(w, ctx.uniform(c, bound=bound))

    @property
    def kernel_size(self) -> int:
        return self.weight.shape[-1]

    def _padding(self) -> tuple[int, int, int, int]:
        k = self.kernel_size
        p = k // 2
        return (p, k - 1 - p, p, k - 1 - p)

    def extra_repr(self) -> str:
        return (f"index={self.index}, channels={self.weight.shape[0]}, "
                f"kernel_size={self.kernel_size}, mode={self.mode!r}")


class MaskedConv2d(Conv2d):
    """The causal raster-order conv2d: substitution in reverse raster order, row blocks with
    boundary fragments (module docstring; docs/conv2d.md)."""

    variant = mode = "masked"
    block_axis = "rows"
    has_vijp_constants = True

    def __init__(self, weight: Tensor, bias: Tensor, mode: str | None = None) -> None:
        super().__init__(weight, bias, mode)
        self.register_buffer("mask", torch.as_tensor(causal_mask(self.kernel_size)).to(
            device=weight.device, dtype=weight.dtype), persistent=False)

    @classmethod
    def taps(cls, k: int) -> np.ndarray:
        return causal_mask(k)

    def _forward(self, x_in: Tensor) -> Tensor:
        return F.conv2d(F.pad(x_in, self._padding()), self.weight * self.mask, self.bias)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        p, (height, width) = self.kernel_size // 2, h_out.shape[-2:]
        # the adjoint of "pad, then correlate": transposed conv over the padded grid, then the
        # padded border is dropped
        h = F.conv_transpose2d(h_out, self.weight * self.mask)
        return h[..., p:p + height, p:p + width]

    def _fragment(self, res: None, h_out: Tensor, block_size: int | None
                  ) -> RowBoundaryFragment | None:
        del res
        p, height = self.kernel_size // 2, h_out.shape[-2]
        n_blocks = boundary_blocks(height, block_size, p, 1, self._name)
        if not n_blocks:
            return None
        rows = (torch.arange(1, n_blocks, device=h_out.device)[:, None] * block_size
                + torch.arange(p, device=h_out.device)).reshape(-1)
        padded = F.pad(h_out, (0, 0, 0, n_blocks * block_size + p - height))
        values = padded.index_select(-2, rows)  # (B, C, (n_blocks - 1) * p, W)
        values = values.unflatten(-2, (n_blocks - 1, p)).permute(0, 2, 3, 4, 1)
        return RowBoundaryFragment(values.contiguous(), block_size)

    def invertible_taps(self) -> dict[str, Tensor]:
        """The centre tap must be invertible."""
        p = self.kernel_size // 2
        return {f"centre tap weight[..., {p}, {p}]": self.weight[..., p, p]}

    def vijp_constants(self) -> tuple[Tensor, Tensor]:
        """``(W_c, T)`` with ``T[..., i, j] = W_ij W_c⁻¹`` for the masked taps (zero elsewhere);
        W_c's invertibility was checked before the phases (:meth:`check_weights`)."""
        p = self.kernel_size // 2
        weight = self.weight.to(solve_dtype(self.weight.dtype))  # float32 for bfloat16 (no LU)
        w0 = weight[..., p, p]
        lu, pivots, _ = torch.linalg.lu_factor_ex(w0)
        taps = (weight * self.mask).permute(2, 3, 0, 1)  # (k, k, C, C)
        # X W_c = W_ij  <=>  W_cᵀ Xᵀ = W_ijᵀ
        t = torch.linalg.lu_solve(lu, pivots, taps.transpose(-1, -2), adjoint=True)
        return w0, t.transpose(-1, -2).permute(2, 3, 0, 1).to(self.weight.dtype)

    def filter_taps(self) -> Tensor:
        """The in-row part of the vijp as row-vector taps (p+1, C, C) in descending lag order
        (lag l reads the position l columns to the right: tap (p, p - l)); what the FFT
        solver inverts along each row."""
        p = self.kernel_size // 2
        return self.weight[..., p, :p + 1].permute(2, 0, 1)

    def filter_steps(self, length: int, frag: RowBoundaryFragment | None) -> int:
        """The FFT solver's steps: one row of ``length`` (the width) columns; 0 for k = 1."""
        del frag
        return length if self.kernel_size // 2 else 0

    def _fft_vijp(self, h_in: Tensor, frag: RowBoundaryFragment | None,
                  inverse: FilterInverse) -> Tensor:
        """Rows in reverse order (all row blocks and batch rows at once); each row is one FFT
        correlation with the in-row inverse filter after the rows below are moved to the
        right-hand side (docs/conv2d.md, 'The FFT solver')."""
        batch, channels, height, width = h_in.shape
        k = self.kernel_size
        p, left = k // 2, k - 1 - k // 2
        block, n_blocks = solve_blocks(height, None if frag is None else frag.block_size, 1,
                                       self._name)
        u = F.pad(h_in.permute(0, 2, 3, 1), (0, 0, 0, 0, 0, n_blocks * block - height))
        u = u.reshape(batch * n_blocks, block, width, channels)
        z = u.new_zeros(batch, n_blocks, block + p, left + width + p, channels)
        if frag is not None:
            z[:, :-1, block:, left:left + width] = frag.values
        z = z.view(batch * n_blocks, block + p, left + width + p, channels)
        below = (self.weight * self.mask)[:, :, :p].flip(-2, -1).transpose(0, 1)
        # a row's right-hand sides followed by ``width`` zeros (the FFT's padding)
        padded = zeroed((batch * n_blocks, 2 * width, channels), h_in, inverse.boundary.dtype,
                        key=("masked fft",))
        for r in range(block - 1, -1, -1):
            later = z[:, r + 1:r + 1 + p].permute(0, 3, 1, 2)  # (N, C, p, left + W + p)
            torch.sub(u[:, r], F.conv2d(later, below)[:, :, 0].transpose(1, 2),
                      out=padded[:, :width])
            z[:, r, left:left + width] = correlate(padded, inverse)[:, :width]
        h_out = z[:, :block, left:left + width].reshape(batch, n_blocks * block, width, channels)
        return h_out[:, :height].permute(0, 3, 1, 2)

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: RowBoundaryFragment | None,
              constants: tuple[Tensor, Tensor] | FilterInverse) -> Tensor:
        del x_in
        if isinstance(constants, FilterInverse):
            return self._fft_vijp(h_in, frag, constants)
        batch, channels, height, width = h_in.shape
        k = self.kernel_size
        p, left = k // 2, k - 1 - k // 2
        w0, taps = constants
        # h_in W_c⁻¹, (B, H, W, C); W_c is in solve_dtype (float32 for bfloat16 h_in)
        # solve_ex: W_c was checked before the phases, so no host sync for its error code
        v = torch.linalg.solve_ex(w0, h_in.permute(0, 2, 3, 1).to(w0.dtype), left=False
                                  )[0].to(h_in.dtype)
        if p == 0:
            return v.permute(0, 3, 1, 2)
        block, n_blocks = solve_blocks(height, None if frag is None else frag.block_size, 1,
                                       self._name)
        # positions past the image have h_out = 0, so zero padding keeps the solve exact
        v = F.pad(v, (0, 0, 0, 0, 0, n_blocks * block - height))
        # z: (B·n_blocks, block + p rows, left + W + p columns, C); the last p rows of a block
        # are the boundary fragment (zero after the last block)
        z = v.new_zeros(batch, n_blocks, block + p, left + width + p, channels)
        if frag is not None:
            z[:, :-1, block:, left:left + width] = frag.values
        z = z.view(batch * n_blocks, block + p, left + width + p, channels)
        v = v.view(batch * n_blocks, block, width, channels)
        # rows below: correlate the p later rows with T[i, j] (i < p), flipped
        below = taps[:, :, :p].flip(-2, -1).transpose(0, 1)  # (C_in, C_out, p, k)
        # along the row: h[c] -= [h[c+1], ..., h[c+p]] @ [T_{p,p-1}; ...; T_{p,0}]
        along = taps[:, :, p, :p].flip(-1).permute(2, 0, 1).reshape(p * channels, channels)
        for r in range(block - 1, -1, -1):
            later = z[:, r + 1:r + 1 + p].permute(0, 3, 1, 2)  # (N, C, p, left + W + p)
            z[:, r, left:left + width] = v[:, r] - F.conv2d(later, below)[:, :, 0].transpose(1, 2)
            for c in range(left + width - 1, left - 1, -1):
                z[:, r, c].addmm_(z[:, r, c + 1:c + 1 + p].reshape(-1, p * channels), along,
                                  alpha=-1)
        h_out = z[:, :block, left:left + width].reshape(batch, n_blocks * block, width, channels)
        return h_out[:, :height].permute(0, 3, 1, 2)

    def condition(self) -> dict[str, float]:
        """``amplification`` = κ(W_c), ``symbol_condition``, ``spectral_radius`` of the
        along-row recurrence and ``tap_norm_sum`` (docs/conv2d.md)."""
        return masked_conv2d_condition(host(self.weight))


class CircularConv2d(Conv2d):
    """The circular conv2d: one C x C solve per frequency of the 2D DFT, no fragment (module
    docstring; docs/conv2d.md)."""

    variant = mode = "circular"

    @classmethod
    def taps(cls, k: int) -> np.ndarray:
        return np.ones((k, k), dtype=bool)

    def _forward(self, x_in: Tensor) -> Tensor:
        return F.conv2d(F.pad(x_in, self._padding(), mode="circular"), self.weight, self.bias)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        p, (height, width) = self.kernel_size // 2, h_out.shape[-2:]
        # the adjoint of "pad, then correlate": transposed conv over the padded grid, then the
        # padded border wrapped around
        h = F.conv_transpose2d(h_out, self.weight)
        return _wrap(_wrap(h, p, height, -2), p, width, -1)

    def _spectrum(self, height: int, width: int, dtype: torch.dtype) -> Tensor:
        """K̂(ω) = sum_ij W_ij e^{-iω·offset_ij} on rfft2's grid, as (H, W // 2 + 1, C, C),
        from the weight in ``dtype``."""
        k, p = self.kernel_size, self.kernel_size // 2
        kernel = self.weight.new_zeros(*self.weight.shape[:2], height, width, dtype=dtype)
        kernel[..., :k, :k] = self.weight
        kernel = torch.roll(kernel, shifts=(-p, -p), dims=(-2, -1))  # tap (i, j) at its offset
        return torch.fft.rfft2(kernel).permute(2, 3, 0, 1)

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: None, constants: None) -> Tensor:
        del x_in, frag, constants
        height, width = h_in.shape[-2:]
        work = solve_dtype(h_in.dtype)  # float32 for bfloat16: no bfloat16 FFT or solve
        spectrum = self._spectrum(height, width, work)
        h_hat = torch.fft.rfft2(h_in.to(work)).permute(2, 3, 0, 1)  # (H, W//2+1, B, C)
        # unchecked (no host sync): a singular K̂(ω) shows as non-finite gradients
        h_out_hat = torch.linalg.solve_ex(spectrum, h_hat, left=False)[0]
        return torch.fft.irfft2(h_out_hat.permute(2, 3, 0, 1), s=(height, width)).to(h_in.dtype)

    def condition(self) -> dict[str, float]:
        """``amplification`` = ``symbol_condition`` = max σ(K̂) / min σ(K̂) on a 32 x 32 grid,
        the condition number of J (docs/conv2d.md)."""
        return circular_conv2d_condition(host(self.weight))


_MODES: dict[str, type[Conv2d]] = {"masked": MaskedConv2d, "circular": CircularConv2d}


def _wrap(t: Tensor, p: int, n: int, dim: int) -> Tensor:
    """Fold a padded axis (p before, the rest after n) back onto its n positions, circularly."""
    after = t.shape[dim] - n - p
    out = t.narrow(dim, p, n).clone()
    if p:
        out.narrow(dim, n - p, p).add_(t.narrow(dim, 0, p))
    if after:
        out.narrow(dim, 0, after).add_(t.narrow(dim, p + n, after))
    return out
