"""Causal 1D convolution C -> C (the channel-expanding 1D stem, ``Stem1d`` in ``_stem.py``,
shares its forward, vjp and parameter vjp).

``x_out[t] = b + sum_l W_l x_in[t - l d]`` for lags ``l = 0..k-1`` and dilation ``d``; the
weight uses torch's (C_out, C_in, k) layout, so lag ``l`` is ``weight[..., k - 1 - l]``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._blocks import boundary_blocks, solve_blocks
from .._conditioning import causal_conv_condition
from .._constants import TAP_SCALE
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext, host
from ._layout import as_image, conv1d, conv1d_param_vjp, conv_transpose1d, time_major
from ._solve import solve_dtype
from ._toeplitz import FilterInverse
from ._workspace import left_padded

__all__ = ["CausalConv1d", "BoundaryFragment"]


class BoundaryFragment(NamedTuple):
    """h_out at the (k-1)·d positions after each time block but the last.

    ``values``: (B, n_blocks - 1, (k-1)·d, C), time-major inside a block; ``block_size``: b.
    """

    values: Tensor
    block_size: int


def _padded_image(x: Tensor, pad: int) -> Tensor:
    """``x`` (B, C, T) left-padded in time by ``pad`` zeros, as a channels-last image (in a
    scratch buffer under no-grad: Note: [scratch buffers])."""
    return as_image(left_padded(x.transpose(1, 2), pad))


def _causal_forward(x: Tensor, weight: Tensor, bias: Tensor, dilation: int) -> Tensor:
    """``x_out`` (B, C_out, T), time-major (Note: [time-major activations])."""
    pad = (weight.shape[-1] - 1) * dilation
    return conv1d(_padded_image(x, pad), weight, bias, dilation=dilation)


def _causal_vjp(h_out: Tensor, weight: Tensor, dilation: int) -> Tensor:
    """``h_out · J`` (B, C_in, T), time-major: the adjoint of "pad left, then convolve" is a
    transposed conv whose first (k-1)·d outputs (the padding's) are dropped."""
    pad = (weight.shape[-1] - 1) * dilation
    return conv_transpose1d(h_out, weight, dilation=dilation)[..., pad:]


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



class CausalConv1d(AbstractLayer):
    """Causal C -> C convolution; surjective when the lag-0 tap W_0 is invertible.

    vijp: back-substitution backwards in time,
    ``h_out[s] = (h_in[s] - sum_{l>=1} h_out[s + l d] W_l) W_0⁻¹``, over the whole sequence
    (no fragment) or independently per time block of length b, started from the boundary
    fragment (docs/method.md, 'Block-wise reconstruction'). b must be a multiple of d. Given a
    :class:`FilterInverse` as ``constants`` instead, the same solve is one FFT correlation with
    the inverse filter per block (the FFT solver, :mod:`._toeplitz`).
    """

    type_name = "causal_conv1d"
    surjective = True
    block_axis = "time"
    has_vijp_constants = True

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

    @property
    def input_halo(self) -> int:
        return self.tail

    def _forward(self, x_in: Tensor) -> Tensor:
        return _causal_forward(x_in, self.weight, self.bias, self.dilation)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        return _causal_vjp(h_out, self.weight, self.dilation)

    def forward_and_param_vjp(self, x_in: Tensor, h_out: Tensor
                              ) -> tuple[Tensor, dict[str, Tensor]]:
        return conv1d_param_vjp(_padded_image(x_in, self.tail), h_out, self.weight, self.bias,
                                dilation=self.dilation)

    def _fragment(self, res: None, h_out: Tensor, block_size: int | None
                  ) -> BoundaryFragment | None:
        del res
        length = h_out.shape[-1]
        n_blocks = boundary_blocks(length, block_size, self.tail, self.dilation, self._name)
        if not n_blocks:
            return None
        h = h_out.transpose(1, 2)  # (B, T, C), a view of a time-major h_out
        end = (n_blocks - 1) * block_size + self.tail
        if end > length:  # the last block is shorter than the tail: h_out = 0 past the end
            h = F.pad(h, (0, 0, 0, end - length))
        # the tail positions after every block but the last, as a strided view of h
        # (B, n_blocks - 1, tail, C); one copy makes it the fragment's own memory
        batch, _, channels = h.shape
        if self.tail <= block_size:
            start = h[:, block_size:]
            values = start.as_strided((batch, n_blocks - 1, self.tail, channels),
                                      (start.stride(0), block_size * start.stride(1),
                                       start.stride(1), start.stride(2)))
            return BoundaryFragment(values.clone(memory_format=torch.contiguous_format),
                                    block_size)
        starts = torch.arange(1, n_blocks, device=h.device) * block_size
        index = (starts[:, None] + torch.arange(self.tail, device=h.device)).reshape(-1)
        values = h.index_select(1, index)  # (B, (n_blocks - 1) * tail, C)
        return BoundaryFragment(values.view(batch, n_blocks - 1, self.tail, channels),
                                block_size)

    def invertible_taps(self) -> dict[str, Tensor]:
        """The lag-0 tap must be invertible."""
        return {"lag-0 tap weight[..., -1]": self.weight[..., -1]}

    def vijp_constants(self) -> tuple[Tensor, Tensor]:
        """``(W_0⁻¹, M)`` with M = [W_1 W_0⁻¹; ...; W_{k-1} W_0⁻¹] stacked, (k-1)C x C.

        Only the C x C lag-0 tap is inverted (one LU), never the layer's Jacobian; whether it
        is invertible was checked before the phases (:meth:`check_weights`), so nothing here
        waits for the device. Computed in :func:`~._solve.solve_dtype` (float32 for bfloat16
        weights), returned in the weight's dtype: the back-substitution runs in it.
        """
        weight = self.weight.to(solve_dtype(self.weight.dtype))
        w0 = weight[..., -1]
        lu, pivots, _ = torch.linalg.lu_factor_ex(w0)
        eye = torch.eye(w0.shape[0], dtype=w0.dtype, device=w0.device)
        w0_inv = torch.linalg.lu_solve(lu, pivots, eye)
        others = weight[..., :-1].flip(-1).permute(2, 0, 1)  # lags 1..k-1: (k-1, C, C)
        m = (others @ w0_inv).reshape(-1, w0.shape[0])
        return w0_inv.to(self.weight.dtype), m.to(self.weight.dtype)

    def filter_taps(self) -> Tensor:
        """The vijp's filter as row-vector taps (k, C, C) in descending lag order,
        ``W_{k-1}, ..., W_0`` with ``h_in[s] = sum_l h_out[s + l d] W_l`` (a view of the
        weight; what the FFT solver inverts)."""
        return self.weight.permute(2, 0, 1)

    def filter_steps(self, length: int, frag: BoundaryFragment | None) -> int:
        """Steps per chain of one block of the solve (what a :class:`FilterInverse` for this
        layer must cover), for an input of ``length`` time steps; 0 for k = 1 (no solve)."""
        if self.tail == 0:
            return 0
        block, _ = solve_blocks(length, None if frag is None else frag.block_size, self.dilation,
                                self._name)
        return block // self.dilation

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: BoundaryFragment | None,
              constants: tuple[Tensor, Tensor] | FilterInverse) -> Tensor:
        del x_in
        if isinstance(constants, FilterInverse):
            return self._fft_vijp(h_in, frag, constants)
        batch, channels, length = h_in.shape
        d, k = self.dilation, self.kernel_size
        w0_inv, m = constants
        if k == 1:  # a pointwise channel mix: h_out = h_in W_0⁻¹
            return torch.matmul(h_in.transpose(1, 2), w0_inv).transpose(1, 2)
        block, n_blocks = solve_blocks(length, None if frag is None else frag.block_size, d,
                                       self._name)
        steps = block // d
        # z starts at h_in W_0⁻¹ (one GEMM), time-major: (B, n_blocks * block, C)
        h = time_major(h_in)
        if n_blocks * block > length:  # h_out = 0 past the end, so zero padding keeps it exact
            h = F.pad(h, (0, 0, 0, n_blocks * block - length))
        z = torch.matmul(h, w0_inv)
        del h
        # chains[b, c, p, q]: position c*block + q*d + p, i.e. d interleaved chains per time
        # block (a view of z when d = 1); tail[b, c, p]: the k-1 chain steps after each block
        # (the boundary fragment; zeros after the last block)
        chains = z.view(batch, n_blocks, steps, d, channels)
        if d > 1:
            chains = chains.transpose(2, 3).contiguous()
        tail = z.new_zeros(batch, n_blocks, d, k - 1, channels)
        if frag is not None:
            tail[:, :-1] = frag.values.view(batch, n_blocks - 1, k - 1, d, channels
                                            ).transpose(2, 3)
        rows = batch * n_blocks * d
        chains, tail = chains.view(rows, steps, channels), tail.view(rows, k - 1, channels)
        # back-substitution, all chains at once: step q subtracts z[q+1..q+k-1] M from z[q];
        # the last k-1 steps read the boundary steps too, the others a strided window of z
        # (``windows[q]``: no copy, and one view per step built up front)
        outs = chains.transpose(0, 1).unbind(0)
        inner = max(steps - k + 1, 0)
        span = (k - 1) * channels
        windows = chains.as_strided((inner, rows, span), (channels, steps * channels, 1),
                                    chains.storage_offset() + channels).unbind(0)
        for q in range(steps - 1, inner - 1, -1):
            later = torch.cat([chains[:, q + 1:], tail[:, :q + k - steps]], 1).view(rows, -1)
            outs[q].addmm_(later, m, alpha=-1)
        del tail
        for q in range(inner - 1, -1, -1):
            outs[q].addmm_(windows[q], m, alpha=-1)
        if d > 1:
            z = chains.view(batch, n_blocks, d, steps, channels).transpose(2, 3)
        # (B, C, T) time-major (Note: [time-major activations])
        return z.reshape(batch, n_blocks * block, channels)[:, :length].transpose(1, 2)

    def _fft_vijp(self, h_in: Tensor, frag: BoundaryFragment | None,
                  inverse: FilterInverse) -> Tensor:
        """The block solve as one correlation with the inverse filter (:mod:`._toeplitz`):
        all blocks, chains and batch rows at once, in a fixed number of launches (a zeroed
        buffer, a copy into it, one product for the boundary values, rfft, product, irfft and
        one copy out)."""
        batch, channels, length = h_in.shape
        d, k = self.dilation, self.kernel_size
        block, n_blocks = solve_blocks(length, None if frag is None else frag.block_size, d,
                                       self._name)
        steps = block // d
        if steps != inverse.steps:
            raise ValueError(f"{self._name}: the FilterInverse covers {inverse.steps} steps, "
                             f"the solve needs {steps}")
        work = inverse.boundary.dtype  # float32 for bfloat16 (no FFT)
        # rows (batch, block, chain), each a chain's steps followed by ``steps`` zeros (the
        # FFT's padding; zero steps past the end keep the last block exact: h_out = 0 there)
        padded = h_in.new_zeros((batch, n_blocks, d, 2 * steps, channels), dtype=work)
        u = h_in.transpose(1, 2)  # (B, T, C), a view
        if n_blocks * block > length:
            u = F.pad(u, (0, 0, 0, n_blocks * block - length))
        padded[:, :, :, :steps].copy_(u.unflatten(1, (n_blocks, steps, d)).transpose(2, 3))
        if frag is not None and k > 1:
            # the boundary values after every block but the last, moved to the right-hand
            # sides of its last min(steps, k-1) steps: one product into the buffer
            m = min(steps, k - 1)
            after = frag.values.view(batch, n_blocks - 1, k - 1, d, channels).transpose(2, 3)
            after = after.reshape(batch, (n_blocks - 1) * d, (k - 1) * channels).to(work)
            target = padded[:, :-1, :, steps - m:steps].view(
                batch, (n_blocks - 1) * d, m * channels)
            target.baddbmm_(after, inverse.boundary[:, (k - 1 - m) * channels:].expand(
                batch, -1, -1), alpha=-1)
            del target, after
        # :func:`~._toeplitz.correlate`'s three steps, written out so that each input is freed
        # once used (the padded right-hand sides and the spectra are a few activations each; an
        # argument would stay alive through the call: 78 vs 94 MiB peak on the README's net)
        spectrum = torch.fft.rfft(padded.view(-1, 2 * steps, channels), dim=1)
        del padded, u
        product = torch.matmul(spectrum.transpose(0, 1), inverse.spectrum)  # (n+1, rows, C)
        del spectrum
        h = torch.fft.irfft(product.transpose(0, 1), n=2 * steps, dim=1)
        del product
        h = h.view(batch, n_blocks, d, 2 * steps, channels)[:, :, :, :steps].transpose(2, 3)
        # (B, C, T) time-major (Note: [time-major activations])
        return h.reshape(batch, n_blocks * block, channels)[:, :length].transpose(1, 2).to(
            h_in.dtype)

    def condition(self) -> dict[str, float]:
        return causal_conv_condition(host(self.weight))

    def extra_repr(self) -> str:
        return (f"index={self.index}, channels={self.weight.shape[0]}, "
                f"kernel_size={self.kernel_size}, dilation={self.dilation}")
