"""RevNet coupling block (the 2024 paper's RevNets): ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._conditioning import branch_lipschitz, branch_rms_gain, coupling_condition
from .._constants import BRANCH_GAIN, BRANCH_SLOPE
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext, host
from ._containers import SignMask, pack_mask

__all__ = ["RevNetCoupling", "ConvBlock", "RevNetResidual", "BRANCH_SLOPE", "BRANCH_GAIN"]


class ConvBlock(nn.Module):
    """``conv_out(leaky_relu(conv_in(x)))``, 'same' zero padding, odd kernel, 1D or 2D."""

    def __init__(self, weight_in: Tensor, bias_in: Tensor, weight_out: Tensor,
                 bias_out: Tensor) -> None:
        super().__init__()
        self.weight_in = nn.Parameter(weight_in)
        self.bias_in = nn.Parameter(bias_in)
        self.weight_out = nn.Parameter(weight_out)
        self.bias_out = nn.Parameter(bias_out)
        self._conv = F.conv2d if weight_in.ndim == 4 else F.conv1d
        self._conv_t = F.conv_transpose2d if weight_in.ndim == 4 else F.conv_transpose1d
        self.padding = weight_in.shape[-1] // 2

    @classmethod
    def init(cls, ctx: BuildContext, channels: int, hidden: int, k: int, rank: int) -> ConvBlock:
        taps = k ** rank
        kernel = (k,) * rank
        if ctx.init == "orthogonal":
            w_in = ctx.orthogonal(hidden, channels * taps).reshape(hidden, channels, *kernel)
            w_out = ctx.orthogonal(channels, hidden * taps).reshape(channels, hidden, *kernel)
            return cls(w_in, ctx.empty(hidden).zero_(), w_out * BRANCH_GAIN,
                       ctx.empty(channels).zero_())
        b_in, b_out = 1 / math.sqrt(channels * taps), 1 / math.sqrt(hidden * taps)
        return cls(ctx.uniform(hidden, channels, *kernel, bound=b_in),
                   ctx.uniform(hidden, bound=b_in),
                   ctx.uniform(channels, hidden, *kernel, bound=b_out),
                   ctx.uniform(channels, bound=b_out))

    def pre_activation(self, x: Tensor) -> Tensor:
        return self._conv(x, self.weight_in, self.bias_in, padding=self.padding)

    def forward(self, x: Tensor) -> Tensor:
        hidden = F.leaky_relu(self.pre_activation(x), BRANCH_SLOPE)
        return self._conv(hidden, self.weight_out, self.bias_out, padding=self.padding)

    def vjp(self, negative: Tensor, h: Tensor) -> Tensor:
        """``h · dF/dx`` given where the pre-activation is <= 0 (weights only otherwise)."""
        h_hidden = self._conv_t(h, self.weight_out, padding=self.padding)
        h_hidden = h_hidden * h_hidden.new_ones(()).where(~negative, h.new_tensor(BRANCH_SLOPE))
        return self._conv_t(h_hidden, self.weight_in, padding=self.padding)

    def host_weights(self) -> tuple:
        """``(weight_in, weight_out)`` as NumPy arrays (one host copy each)."""
        return host(self.weight_in), host(self.weight_out)

    def rms_gain(self) -> float:
        """Mean-square gain of dF/dx on a random direction (``branch_rms_gain``)."""
        return branch_rms_gain(*self.host_weights(), BRANCH_SLOPE)

    def lipschitz(self) -> float:
        """Upper bound on F's Lipschitz constant (``branch_lipschitz``)."""
        return branch_lipschitz(*self.host_weights())


class RevNetResidual(NamedTuple):
    """Sign masks (pre-activation <= 0) of F's and G's hidden layers: all the vjp needs."""

    f_negative: SignMask
    g_negative: SignMask


class RevNetCoupling(AbstractLayer):
    """Additive coupling on the two channel halves: ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``.

    Bijective, hence surjective. With ``a = h_x1``:
    vjp: ``a = h_y1 + h_y2·G'(y1)``, ``h_x1 = a``, ``h_x2 = h_y2 + a·F'(x2)``;
    vijp (two vjps, no matrix inverse): ``h_y2 = h_x2 - h_x1·F'(x2)``,
    ``h_y1 = h_x1 - h_y2·G'(y1)`` with ``y1 = x1 + F(x2)`` recomputed from ``x_in``;
    inverse: ``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)`` (used by RevBackprop).
    """

    type_name = "revnet_coupling"
    surjective = True
    reversible = True

    def __init__(self, f: ConvBlock, g: ConvBlock) -> None:
        super().__init__()
        self.f, self.g = f, g

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> RevNetCoupling:
        half, rank = spec.in_shape[0] // 2, len(spec.in_shape) - 1
        k, hidden = spec["kernel_size"], spec["hidden"]
        return cls(ConvBlock.init(ctx, half, hidden, k, rank),
                   ConvBlock.init(ctx, half, hidden, k, rank))

    def _forward(self, x_in: Tensor) -> Tensor:
        x1, x2 = x_in.chunk(2, dim=1)
        y1 = x1 + self.f(x2)
        return torch.cat([y1, x2 + self.g(y1)], dim=1)

    def _residual(self, x_in: Tensor, x_out: Tensor, pack_residuals: bool) -> RevNetResidual:
        x2, y1 = x_in.chunk(2, dim=1)[1], x_out.chunk(2, dim=1)[0]
        return RevNetResidual(pack_mask(self.f.pre_activation(x2) <= 0, pack_residuals),
                              pack_mask(self.g.pre_activation(y1) <= 0, pack_residuals))

    def _vjp(self, res: RevNetResidual, h_out: Tensor) -> Tensor:
        h_y1, h_y2 = h_out.chunk(2, dim=1)
        a = h_y1 + self.g.vjp(res.g_negative.unpack(), h_y2)
        return torch.cat([a, h_y2 + self.f.vjp(res.f_negative.unpack(), a)], dim=1)

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: None, constants: None) -> Tensor:
        del frag, constants
        x1, x2 = x_in.chunk(2, dim=1)
        h_x1, h_x2 = h_in.chunk(2, dim=1)
        y1 = x1 + self.f(x2)
        h_y2 = h_x2 - self.f.vjp(self.f.pre_activation(x2) <= 0, h_x1)
        h_y1 = h_x1 - self.g.vjp(self.g.pre_activation(y1) <= 0, h_y2)
        return torch.cat([h_y1, h_y2], dim=1)

    def inverse(self, x_out: Tensor) -> Tensor:
        """``x_in`` from ``x_out``: ``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)``."""
        y1, y2 = x_out.chunk(2, dim=1)
        x2 = y2 - self.g(y1)
        return torch.cat([y1 - self.f(x2), x2], dim=1)

    def condition(self) -> dict[str, float]:
        """Amplification estimates of the vijp, from weight norms (``coupling_condition``):
        ``amplification``, ``amplification_bound``, ``lipschitz_f``, ``lipschitz_g``."""
        return coupling_condition(self.f.host_weights(), self.g.host_weights(), BRANCH_SLOPE)

    def extra_repr(self) -> str:
        w = self.f.weight_in
        return (f"index={self.index}, channels={2 * w.shape[1]}, hidden={w.shape[0]}, "
                f"kernel_size={w.shape[-1]}")
