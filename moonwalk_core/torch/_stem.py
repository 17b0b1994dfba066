"""The channel-expanding stem: the first conv of the 1D and 2D families (full fragment).

One class per input rank: :class:`Stem1d` (a causal conv1d, as CausalConv1d) and
:class:`Stem2d` (a 'same' zero-padded conv2d); :class:`Stem` is their base, and
``Stem(weight, bias)`` builds the class of the weight's rank.
"""

from __future__ import annotations

import math
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .._constants import TAP_SCALE
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext
from ._causal_conv import (
    _causal_forward,
    _causal_vjp,
    _default_conv_init,
    _orthogonal_taps,
    _padded_image,
)
from ._layout import conv1d_param_vjp

__all__ = ["Stem", "Stem1d", "Stem2d"]


class Stem(AbstractLayer):
    """Channel-expanding conv C_in -> C_out (C_out >= C_in): J is not surjective, so Phase II
    stores the whole h_out (a full fragment, one activation) and Phase III never inverts it.
    """

    type_name = "stem"
    surjective = False
    _rank: int

    def __new__(cls, *args: Any, **kwargs: Any) -> Stem:
        if cls is Stem:  # the constructor of the base picks the class of the weight's rank
            weight = kwargs.get("weight", args[0] if args else None)
            ndim = getattr(weight, "ndim", None)
            if ndim not in (3, 4):
                raise ValueError(f"Stem weight {tuple(getattr(weight, 'shape', ()))}: use "
                                 "(C_out, C_in, k) for 1D or (C_out, C_in, k, k) for 2D")
            cls = Stem1d if ndim == 3 else Stem2d
        return super().__new__(cls)

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        if weight.ndim != self._rank + 2:
            raise ValueError(f"{type(self).__name__} weight {tuple(weight.shape)}: needs "
                             f"{self._rank + 2} dimensions (C_out, C_in{', k' * self._rank})")
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    def condition(self) -> dict[str, float]:
        """Exact: Phase III takes the stored h_out, never a solve."""
        return {"amplification": 1.0}


class Stem1d(Stem):
    """The 1D stem: a causal conv1d C_in -> C_out, weight (C_out, C_in, k) as CausalConv1d."""

    variant = "1d"
    _rank = 1

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Stem1d:
        c_in, c_out, k = spec.in_shape[0], spec["channels"], spec["kernel_size"]
        if ctx.init == "orthogonal":
            w, b = _orthogonal_taps(ctx, c_out, c_in, k, TAP_SCALE), ctx.empty(c_out).zero_()
        else:
            w, b = _default_conv_init(ctx, c_out, c_in, k)
        return cls(w, b)

    def _forward(self, x_in: Tensor) -> Tensor:
        return _causal_forward(x_in, self.weight, self.bias, 1)

    def forward_and_param_vjp(self, x_in: Tensor, h_out: Tensor
                              ) -> tuple[Tensor, dict[str, Tensor]]:
        pad = self.weight.shape[-1] - 1
        return conv1d_param_vjp(_padded_image(x_in, pad), h_out, self.weight, self.bias)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        return _causal_vjp(h_out, self.weight, 1)


def _same_padding(k: int) -> tuple[int, int, int, int]:
    """``F.pad`` widths (left, right, top, bottom) that keep H x W: the centre tap is k // 2."""
    p = k // 2
    return (p, k - 1 - p, p, k - 1 - p)


class Stem2d(Stem):
    """The 2D stem: a stride-1 conv2d C_in -> C_out with 'same' zero padding, weight
    (C_out, C_in, k, k), centre tap at (k // 2, k // 2), k - 1 - k // 2 rows/columns of padding
    after."""

    variant = "2d"
    _rank = 2

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Stem2d:
        c_in, c_out, k = spec.in_shape[0], spec["channels"], spec["kernel_size"]
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
        return F.conv2d(F.pad(x_in, _same_padding(self.weight.shape[-1])), self.weight,
                        self.bias)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        p = self.weight.shape[-1] // 2
        # the adjoint of "pad, then correlate": transposed conv, then drop the padded border
        h = F.conv_transpose2d(h_out, self.weight)
        return h[..., p:p + h_out.shape[-2], p:p + h_out.shape[-1]]
