"""Causal 1D convolution C -> C (the channel-expanding Stem lives in ``_stem.py``).

``x_out[t] = b + sum_l W_l x_in[t - l d]`` for lags ``l = 0..k-1`` and dilation ``d``; the
weight uses torch's (C_out, C_in, k) layout, so lag ``l`` is ``weight[..., k - 1 - l]``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext

__all__ = ["CausalConv1d", "BoundaryFragment"]


class BoundaryFragment(NamedTuple):
    """h_out at the (k-1)·d positions after each time block but the last.

    ``values``: (B, n_blocks - 1, (k-1)·d, C), time-major inside a block; ``block_size``: b.
    """

    values: Tensor
    block_size: int


def _causal_forward(x: Tensor, weight: Tensor, bias: Tensor, dilation: int) -> Tensor:
    k = weight.shape[-1]
    return F.conv1d(F.pad(x, ((k - 1) * dilation, 0)), weight, bias, dilation=dilation)


def _causal_vjp(h_out: Tensor, weight: Tensor, dilation: int) -> Tensor:
    k = weight.shape[-1]
    # the adjoint of "pad left, then convolve": transposed conv, then drop the padded positions
    return F.conv_transpose1d(h_out, weight, dilation=dilation)[..., (k - 1) * dilation:]


def _orthogonal_taps(ctx: BuildContext, c_out: int, c_in: int, k: int,
                     tap_scale: float) -> Tensor:
    """Lag-0 tap orthogonal, other taps Gaussian with spectral norm about ``tap_scale``."""
    w = ctx.empty(c_out, c_in, k)
    w[..., -1] = ctx.orthogonal(c_out, c_in)
    for j in range(k - 1):
        w[..., j] = ctx.normal(c_out, c_in, std=tap_scale / (math.sqrt(c_out) + math.sqrt(c_in)))
    return w


def _default_conv_init(ctx: BuildContext, c_out: int, c_in: int, k: int) -> tuple[Tensor, Tensor]:
    bound = 1 / math.sqrt(c_in * k)  # torch's nn.Conv1d default (kaiming_uniform, a=sqrt(5))
    return ctx.uniform(c_out, c_in, k, bound=bound), ctx.uniform(c_out, bound=bound)


TAP_SCALE = 0.5
"""Spectral norm of each non-lag-0 tap under the default init (SPEC §1 'Error growth')."""


class CausalConv1d(AbstractLayer):
    """Causal C -> C convolution; surjective when the lag-0 tap W_0 is invertible.

    vijp: back-substitution backwards in time,
    ``h_out[s] = (h_in[s] - sum_{l>=1} h_out[s + l d] W_l) W_0⁻¹``, over the whole sequence
    (no fragment) or independently per time block of length b, started from the boundary
    fragment (SPEC §1 'Block-wise reconstruction'). b must be a multiple of d.
    """

    type_name = "causal_conv1d"

    def __init__(self, weight: Tensor, bias: Tensor, dilation: int = 1) -> None:
        super().__init__()
        c_out, c_in, _ = weight.shape
        if c_out != c_in:
            raise ValueError(f"CausalConv1d weight {tuple(weight.shape)}: needs C_out == C_in")
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.dilation = dilation

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> CausalConv1d:
        c, k = spec.in_shape[0], spec["kernel_size"]
        if ctx.init == "orthogonal":
            w, b = _orthogonal_taps(ctx, c, c, k, TAP_SCALE), ctx.empty(c).zero_()
        else:
            w, b = _default_conv_init(ctx, c, c, k)
        return cls(w, b, spec["dilation"])

    @property
    def kernel_size(self) -> int:
        return self.weight.shape[-1]

    @property
    def tail(self) -> int:
        """How many later positions one step of the back-substitution reads: (k-1)·d."""
        return (self.kernel_size - 1) * self.dilation

    def _forward(self, x_in: Tensor) -> Tensor:
        return _causal_forward(x_in, self.weight, self.bias, self.dilation)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        return _causal_vjp(h_out, self.weight, self.dilation)

    def _check_block_size(self, block_size: int) -> None:
        if block_size % self.dilation:
            raise ValueError(f"layer {self.index} (causal_conv1d): block_size={block_size} "
                             f"must be a multiple of the dilation {self.dilation}")

    def _fragment(self, res: None, h_out: Tensor, block_size: int | None
                  ) -> BoundaryFragment | None:
        del res
        length = h_out.shape[-1]
        if block_size is None or block_size >= length or self.tail == 0:
            return None
        self._check_block_size(block_size)
        n_blocks = -(-length // block_size)
        if n_blocks == 1:
            return None
        padded = F.pad(h_out, (0, n_blocks * block_size + self.tail - length))
        starts = torch.arange(1, n_blocks, device=h_out.device) * block_size
        index = (starts[:, None] + torch.arange(self.tail, device=h_out.device)).reshape(-1)
        values = padded.index_select(-1, index)  # (B, C, (n_blocks - 1) * tail)
        values = values.reshape(h_out.shape[0], h_out.shape[1], n_blocks - 1, self.tail)
        return BoundaryFragment(values.permute(0, 2, 3, 1).contiguous(), block_size)

    def _inverse_taps(self) -> tuple[Tensor, Tensor]:
        """``(W_0⁻¹, M)`` with M = [W_1 W_0⁻¹; ...; W_{k-1} W_0⁻¹] stacked, (k-1)C x C.

        Only the C x C lag-0 tap is inverted (one LU), never the layer's Jacobian.
        """
        w0 = self.weight[..., -1]
        lu, pivots, info = torch.linalg.lu_factor_ex(w0)
        if int(info) != 0 or not torch.isfinite(lu).all():
            raise ValueError(f"layer {self.index} (causal_conv1d): the lag-0 tap "
                             "weight[..., -1] is singular, so the layer has no vijp; use an "
                             "invertible lag-0 tap (the default 'orthogonal' init gives one)")
        eye = torch.eye(w0.shape[0], dtype=w0.dtype, device=w0.device)
        w0_inv = torch.linalg.lu_solve(lu, pivots, eye)
        others = self.weight[..., :-1].flip(-1).permute(2, 0, 1)  # lags 1..k-1: (k-1, C, C)
        return w0_inv, (others @ w0_inv).reshape(-1, w0.shape[0])

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: BoundaryFragment | None) -> Tensor:
        del x_in
        batch, channels, length = h_in.shape
        d, k = self.dilation, self.kernel_size
        w0_inv, m = self._inverse_taps()
        if k == 1:  # a pointwise channel mix: h_out = h_in W_0⁻¹
            return torch.matmul(h_in.transpose(1, 2), w0_inv).transpose(1, 2)
        if frag is None:
            block = -(-length // d) * d
        else:
            block = frag.block_size
            self._check_block_size(block)
        n_blocks, steps = -(-length // block), block // d
        # positions past the end have h_out = 0, so zero padding keeps the solve exact
        h_in = F.pad(h_in, (0, n_blocks * block - length)) if n_blocks * block > length else h_in
        # z[b, c, p, q]: position c*block + q*d + p, i.e. d interleaved chains per time block,
        # started at h_in W_0⁻¹ (one GEMM); tail[b, c, p]: the k-1 chain steps after the block
        # (the boundary fragment; zeros after the last block)
        z = torch.matmul(h_in.view(batch, channels, n_blocks, steps, d).permute(0, 2, 4, 3, 1),
                         w0_inv)
        tail = h_in.new_zeros(batch, n_blocks, d, k - 1, channels)
        if frag is not None:
            tail[:, :-1] = frag.values.view(batch, n_blocks - 1, k - 1, d, channels
                                            ).transpose(2, 3)
        z, tail = z.view(-1, steps, channels), tail.view(-1, k - 1, channels)
        rows = z.shape[0]
        for q in range(steps - 1, -1, -1):  # back-substitution, all chains at once
            if q + k <= steps:
                later = z[:, q + 1:q + k].reshape(rows, (k - 1) * channels)
            else:  # the window reaches into the boundary steps
                later = torch.cat([z[:, q + 1:], tail[:, :q + k - steps]], 1).view(rows, -1)
            z[:, q].addmm_(later, m, alpha=-1)
        del tail
        h_out = z.view(batch, n_blocks, d, steps, channels).permute(0, 4, 1, 3, 2)
        # contiguous (B, C, T): the next layer's kernels are several times slower on a
        # channels-last view
        return h_out.reshape(batch, channels, n_blocks * block)[..., :length].contiguous()

    def condition(self) -> dict[str, float]:
        w0 = self.weight[..., -1].detach().double()
        m = self._inverse_taps()[1].detach().double()
        s = torch.linalg.svdvals(w0)
        c, k = w0.shape[0], self.kernel_size
        if k == 1:
            return {"amplification": float(s[0] / s[-1]), "spectral_radius": 0.0}
        # companion matrix of the backward recurrence z[q] = -sum_l z[q + l] M_l
        comp = torch.zeros((k - 1) * c, (k - 1) * c, dtype=torch.float64)
        comp[:, :c] = -m
        comp[: (k - 2) * c, c:] = torch.eye((k - 2) * c, dtype=torch.float64)
        rho = float(torch.linalg.eigvals(comp).abs().max())
        # κ of the symbol W(ω) = Σ_l W_l e^{-iωl} on a frequency grid: the condition number of
        # J for long sequences when the recurrence is stable (ρ < 1)
        # (σ² from the Hermitian eigenvalues of W(ω)ᴴW(ω): several times cheaper than an SVD;
        # real weights give W(-ω) = conj W(ω), so ω in [0, π] covers the 32-point grid)
        omega = torch.arange(17, dtype=torch.float64) * (2 * math.pi / 32)
        lags = self.weight.detach().double().flip(-1).permute(2, 0, 1).to(torch.complex128)
        phase = torch.exp(-1j * omega[:, None] * torch.arange(k, dtype=torch.float64))
        sym = torch.einsum("wl,lij->wij", phase, lags)
        sq = torch.linalg.eigvalsh(sym.mH @ sym)
        return {"amplification": float(s[0] / s[-1]), "spectral_radius": rho,
                "symbol_condition": float((sq.max() / sq.min().clamp_min(1e-300)) ** 0.5)}

    def extra_repr(self) -> str:
        return (f"index={self.index}, channels={self.weight.shape[0]}, "
                f"kernel_size={self.kernel_size}, dilation={self.dilation}")
