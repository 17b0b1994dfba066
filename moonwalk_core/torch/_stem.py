"""The channel-expanding Stem: the first conv of the 1D and 2D families (full fragment)."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext
from ._causal_conv import (
    TAP_SCALE,
    _causal_forward,
    _causal_vjp,
    _default_conv_init,
    _orthogonal_taps,
    _padded_image,
)
from ._layout import conv1d_param_vjp

__all__ = ["Stem"]


def _same_padding(k: int) -> tuple[int, int, int, int]:
    """``F.pad`` widths (left, right, top, bottom) that keep H x W: the centre tap is k // 2."""
    p = k // 2
    return (p, k - 1 - p, p, k - 1 - p)


class Stem(AbstractLayer):
    """Channel-expanding conv C_in -> C_out (C_out >= C_in).

    On ``[C, T]`` inputs a causal conv1d (weight (C_out, C_in, k), as CausalConv1d); on
    ``[C, H, W]`` inputs a stride-1 conv2d with 'same' zero padding (weight (C_out, C_in, k, k),
    centre tap at (k // 2, k // 2), k - 1 - k // 2 rows/columns of padding after). J is not
    surjective, so Phase II stores the whole h_out (a full fragment, one activation).
    """

    type_name = "stem"
    surjective = False

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        if weight.ndim not in (3, 4):
            raise ValueError(f"Stem weight {tuple(weight.shape)}: use (C_out, C_in, k) for 1D "
                             "or (C_out, C_in, k, k) for 2D")
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Stem:
        c_in, c_out, k = spec.in_shape[0], spec["channels"], spec["kernel_size"]
        if len(spec.in_shape) == 2:
            if ctx.init == "orthogonal":
                w, b = _orthogonal_taps(ctx, c_out, c_in, k, TAP_SCALE), ctx.empty(c_out).zero_()
            else:
                w, b = _default_conv_init(ctx, c_out, c_in, k)
            return cls(w, b)
        if ctx.init == "orthogonal":
            # centre tap orthogonal, the other k² - 1 taps Gaussian of spectral norm ~TAP_SCALE
            w = ctx.empty(c_out, c_in, k, k)
            std = TAP_SCALE / (math.sqrt(c_out) + math.sqrt(c_in))
            for i in range(k):
                for j in range(k):
                    w[..., i, j] = ctx.normal(c_out, c_in, std=std)
            w[..., k // 2, k // 2] = ctx.orthogonal(c_out, c_in)
            return cls(w, ctx.empty(c_out).zero_())
        bound = 1 / math.sqrt(c_in * k * k)  # torch's nn.Conv2d default
        return cls(ctx.uniform(c_out, c_in, k, k, bound=bound), ctx.uniform(c_out, bound=bound))

    def _forward(self, x_in: Tensor) -> Tensor:
        if self.weight.ndim == 3:
            return _causal_forward(x_in, self.weight, self.bias, 1)
        return F.conv2d(F.pad(x_in, _same_padding(self.weight.shape[-1])), self.weight, self.bias)

    def forward_and_param_vjp(self, x_in: Tensor, h_out: Tensor
                              ) -> tuple[Tensor, dict[str, Tensor]]:
        if self.weight.ndim == 3:
            pad = self.weight.shape[-1] - 1
            return conv1d_param_vjp(_padded_image(x_in, pad), h_out, self.weight, self.bias)
        return super().forward_and_param_vjp(x_in, h_out)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        if self.weight.ndim == 3:
            return _causal_vjp(h_out, self.weight, 1)
        k = self.weight.shape[-1]
        p = k // 2
        # the adjoint of "pad, then correlate": transposed conv, then drop the padded border
        h = F.conv_transpose2d(h_out, self.weight)
        return h[..., p:p + h_out.shape[-2], p:p + h_out.shape[-1]]
