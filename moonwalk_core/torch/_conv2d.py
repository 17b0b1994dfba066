"""Stride-1 C -> C 2D convolution with an exact vijp, in two modes (docs/conv2d.md).

Weight (C_out, C_in, k, k) in torch's cross-correlation layout; the centre ("lag-0") tap is
``W_c = weight[..., p, p]`` with ``p = k // 2``, and tap (i, j) reads the input at offset
``(i - p, j - p)``: ``x_out[r, c] = b + sum_{i,j} W_ij x_in[r + i - p, c + j - p]``.

* ``mode="masked"`` (the default of the ``conv2d`` architecture entry): a causal raster-order
  mask keeps only the taps whose offset comes before the centre in raster order (every row above,
  the columns left of the centre in its own row) plus the centre itself; zero padding. Then
  ``h_in[s] = h_out[s] W_c + sum_{taps before the centre} h_out[s - offset] W_ij``, where every
  ``s - offset`` comes *after* s in raster order, so h_out is recovered by substitution in reverse
  raster order: ``h_out[s] = h_in[s] W_c⁻¹ - sum h_out[s - offset] T_ij`` with the normalized
  taps ``T_ij = W_ij W_c⁻¹``. The solve runs row by row from the bottom: the rows below enter
  through one small convolution, then a right-to-left recurrence along the row (tail p). With
  ``block_size = b`` (Moonwalk's block_size, reused as *rows per block*), Phase II stores h_out
  in the p rows after each block of b rows (boundary fragments, C·p·W numbers per block), so all
  blocks are solved independently and at once, and the error restarts from exact values.
* ``mode="circular"``: every tap, circular padding. The layer is a circular convolution, which
  the 2D DFT diagonalizes: with ``K̂(ω) = sum_ij W_ij e^{-iω·offset_ij}`` (C x C per frequency),
  ``ĥ_in(ω) = ĥ_out(ω) K̂(ω)``, so ``ĥ_out(ω) = ĥ_in(ω) K̂(ω)⁻¹``: one C x C solve per frequency
  of ``torch.fft.rfft2``, then ``irfft2``. Exact (round-off only), no fragment, no block size.

Both are surjective when the solves exist (W_c invertible; K̂(ω) invertible at every ω).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext

__all__ = ["Conv2d", "RowBoundaryFragment", "TAP_NORM_SUM"]

TAP_NORM_SUM = 0.5
"""Default init: sum of the spectral norms of the non-centre taps (centre tap orthogonal).

Below 1, the masked substitution is a contraction (errors stay below δ / (1 - 0.5)) and every
K̂(ω) of the circular mode has condition number at most (1 + 0.5) / (1 - 0.5) = 3."""


class RowBoundaryFragment(NamedTuple):
    """h_out in the p rows after each block of ``block_size`` rows but the last.

    ``values``: (B, n_blocks - 1, p, W, C), channels last; rows past the image are zero.
    """

    values: Tensor
    block_size: int


def causal_mask(k: int, *, device: torch.device | None = None) -> Tensor:
    """(k, k) bool: the taps before the centre (k // 2, k // 2) in raster order, and the centre."""
    p = k // 2
    rows = torch.arange(k, device=device)[:, None]
    cols = torch.arange(k, device=device)[None, :]
    return (rows < p) | ((rows == p) & (cols <= p))


class Conv2d(AbstractLayer):
    """Stride-1 C -> C conv2d, ``mode`` "masked" (row-block substitution) or "circular" (FFT).

    Attributes:
        mode: "masked" or "circular" (module docstring; docs/conv2d.md).
    """

    type_name = "conv2d"

    def __init__(self, weight: Tensor, bias: Tensor, mode: str = "masked") -> None:
        super().__init__()
        c_out, c_in, k, k2 = weight.shape
        if c_out != c_in or k != k2:
            raise ValueError(f"Conv2d weight {tuple(weight.shape)}: needs (C, C, k, k)")
        if mode not in ("masked", "circular"):
            raise ValueError(f"Conv2d(mode={mode!r}): use 'masked' or 'circular'")
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.mode = mode
        self.register_buffer("mask", causal_mask(k, device=weight.device).to(weight.dtype)
                             if mode == "masked" else torch.ones_like(weight[0, 0]),
                             persistent=False)

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Conv2d:
        c, k, mode = spec.in_shape[0], spec["kernel_size"], spec["mode"]
        mask = causal_mask(k) if mode == "masked" else torch.ones(k, k, dtype=torch.bool)
        p = k // 2
        if ctx.init == "orthogonal":
            w = ctx.empty(c, c, k, k).zero_()
            n_taps = int(mask.sum()) - 1
            std = TAP_NORM_SUM / max(n_taps, 1) / (2 * math.sqrt(c))  # ‖G‖ ≈ 2 std √c
            for i, j in mask.nonzero().tolist():
                if (i, j) != (p, p):
                    w[..., i, j] = ctx.normal(c, c, std=std)
            w[..., p, p] = ctx.orthogonal(c, c)
            return cls(w, ctx.empty(c).zero_(), mode)
        bound = 1 / math.sqrt(c * k * k)  # torch's nn.Conv2d default
        w = ctx.uniform(c, c, k, k, bound=bound) * mask.to(ctx.dtype)
        return cls(w, ctx.uniform(c, bound=bound), mode)

    @property
    def kernel_size(self) -> int:
        return self.weight.shape[-1]

    def _padding(self) -> tuple[int, int, int, int]:
        k = self.kernel_size
        p = k // 2
        return (p, k - 1 - p, p, k - 1 - p)

    def _forward(self, x_in: Tensor) -> Tensor:
        pad_mode = "circular" if self.mode == "circular" else "constant"
        x = F.pad(x_in, self._padding(), mode=pad_mode)
        return F.conv2d(x, self.weight * self.mask, self.bias)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        k, (height, width) = self.kernel_size, h_out.shape[-2:]
        p = k // 2
        # the adjoint of "pad, then correlate": transposed conv over the padded grid, then the
        # padded border is dropped (zero padding) or wrapped around (circular padding)
        h = F.conv_transpose2d(h_out, self.weight * self.mask)
        if self.mode == "masked":
            return h[..., p:p + height, p:p + width]
        return _wrap(_wrap(h, p, height, -2), p, width, -1)

    def _fragment(self, res: None, h_out: Tensor, block_size: int | None
                  ) -> RowBoundaryFragment | None:
        del res
        p, height = self.kernel_size // 2, h_out.shape[-2]
        if self.mode == "circular" or block_size is None or block_size >= height or p == 0:
            return None
        n_blocks = -(-height // block_size)
        rows = (torch.arange(1, n_blocks, device=h_out.device)[:, None] * block_size
                + torch.arange(p, device=h_out.device)).reshape(-1)
        padded = F.pad(h_out, (0, 0, 0, n_blocks * block_size + p - height))
        values = padded.index_select(-2, rows)  # (B, C, (n_blocks - 1) * p, W)
        values = values.unflatten(-2, (n_blocks - 1, p)).permute(0, 2, 3, 4, 1)
        return RowBoundaryFragment(values.contiguous(), block_size)

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: RowBoundaryFragment | None) -> Tensor:
        del x_in
        if self.mode == "circular":
            return self._fft_solve(h_in)
        return self._substitute(h_in, frag)

    # -- masked: substitution in reverse raster order -----------------------------------------
    def _normalized_taps(self) -> tuple[Tensor, Tensor]:
        """``(W_c, T)`` with ``T[..., i, j] = W_ij W_c⁻¹`` for the masked taps (zero elsewhere)."""
        p = self.kernel_size // 2
        w0 = self.weight[..., p, p]
        lu, pivots, info = torch.linalg.lu_factor_ex(w0)
        if int(info) != 0 or not torch.isfinite(lu).all():
            raise ValueError(f"layer {self.index} (conv2d): the centre tap weight[..., {p}, {p}] "
                             "is singular, so the layer has no vijp; use an invertible centre "
                             "tap (the default 'orthogonal' init gives one)")
        taps = (self.weight * self.mask).permute(2, 3, 0, 1)  # (k, k, C, C)
        # X W_c = W_ij  <=>  W_cᵀ Xᵀ = W_ijᵀ
        t = torch.linalg.lu_solve(lu, pivots, taps.transpose(-1, -2), adjoint=True)
        return w0, t.transpose(-1, -2).permute(2, 3, 0, 1)

    def _substitute(self, h_in: Tensor, frag: RowBoundaryFragment | None) -> Tensor:
        batch, channels, height, width = h_in.shape
        k = self.kernel_size
        p, left = k // 2, k - 1 - k // 2
        w0, taps = self._normalized_taps()
        v = torch.linalg.solve(w0, h_in.permute(0, 2, 3, 1), left=False)  # h_in W_c⁻¹, (B,H,W,C)
        if p == 0:
            return v.permute(0, 3, 1, 2)
        block = height if frag is None else frag.block_size
        n_blocks = -(-height // block)
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

    # -- circular: per-frequency solves -------------------------------------------------------
    def _spectrum(self, height: int, width: int) -> Tensor:
        """K̂(ω) = sum_ij W_ij e^{-iω·offset_ij} on rfft2's grid, as (H, W // 2 + 1, C, C)."""
        k, p = self.kernel_size, self.kernel_size // 2
        kernel = self.weight.new_zeros(*self.weight.shape[:2], height, width)
        kernel[..., :k, :k] = self.weight * self.mask
        kernel = torch.roll(kernel, shifts=(-p, -p), dims=(-2, -1))  # tap (i, j) at its offset
        return torch.fft.rfft2(kernel).permute(2, 3, 0, 1)

    def _fft_solve(self, h_in: Tensor) -> Tensor:
        height, width = h_in.shape[-2:]
        spectrum = self._spectrum(height, width)
        h_hat = torch.fft.rfft2(h_in).permute(2, 3, 0, 1)  # (H, W//2+1, B, C)
        h_out_hat = torch.linalg.solve(spectrum, h_hat, left=False)
        return torch.fft.irfft2(h_out_hat.permute(2, 3, 0, 1), s=(height, width))

    def condition(self) -> dict[str, float]:
        """Amplification estimates of the vijp.

        Both modes: ``symbol_condition`` = max_ω σ_max(K̂(ω)) / min_ω σ_min(K̂(ω)) on a 32 x 32
        frequency grid (the layer does not store its image size): the condition number of J
        for circular padding, and of J on large images for the masked kernel.
        circular: ``amplification`` = ``symbol_condition``.
        masked: ``amplification`` = κ(W_c); ``spectral_radius`` of the right-to-left recurrence
        along a row (its companion matrix, as CausalConv1d); ``tap_norm_sum`` = sum of ‖T_ij‖₂
        over the non-centre taps: below 1 the whole 2D substitution is a contraction.
        """
        with torch.no_grad():
            n = max(32, self.kernel_size)
            s = torch.linalg.svdvals(self._spectrum(n, n).to(torch.complex128))
            symbol = float(s.max() / s.min())
            if self.mode == "circular":
                return {"amplification": symbol, "symbol_condition": symbol}
            w0, taps = (t.detach().double() for t in self._normalized_taps())
        k, c, p = self.kernel_size, w0.shape[0], self.kernel_size // 2
        s = torch.linalg.svdvals(w0)
        out = {"amplification": float(s[0] / s[-1]), "symbol_condition": symbol,
               "spectral_radius": 0.0, "tap_norm_sum": 0.0}
        if p == 0:
            return out
        mask = causal_mask(k)
        mask[p, p] = False
        out["tap_norm_sum"] = float(torch.linalg.matrix_norm(
            taps.permute(2, 3, 0, 1)[mask], ord=2).sum())
        along = taps[:, :, p, :p].flip(-1).permute(2, 0, 1).reshape(p * c, c)
        comp = torch.zeros(p * c, p * c, dtype=torch.float64)
        comp[:, :c] = -along
        comp[: (p - 1) * c, c:] = torch.eye((p - 1) * c, dtype=torch.float64)
        out["spectral_radius"] = float(torch.linalg.eigvals(comp).abs().max())
        return out

    def extra_repr(self) -> str:
        return (f"index={self.index}, channels={self.weight.shape[0]}, "
                f"kernel_size={self.kernel_size}, mode={self.mode!r}")


def _wrap(t: Tensor, p: int, n: int, dim: int) -> Tensor:
    """Fold a padded axis (p before, the rest after n) back onto its n positions, circularly."""
    after = t.shape[dim] - n - p
    out = t.narrow(dim, p, n).clone()
    if p:
        out.narrow(dim, n - p, p).add_(t.narrow(dim, 0, p))
    if after:
        out.narrow(dim, 0, after).add_(t.narrow(dim, p + n, after))
    return out
