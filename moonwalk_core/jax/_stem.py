"""The channel-expanding Stem: the first conv of the 1D and 2D families (full fragment)."""

from __future__ import annotations

import math

import numpy as np
from jax import Array

from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext
from ._causal_conv import (
    TAP_SCALE,
    _causal_forward,
    _causal_param_vjp,
    _causal_vjp,
    _default_conv_init,
    _orthogonal_taps,
)
from ._conv2d import tap_forward, tap_vjp

__all__ = ["Stem"]


class Stem(AbstractLayer):
    """Channel-expanding conv C_in -> C_out (C_out >= C_in).

    On ``[C, T]`` inputs a causal conv1d (weight (C_out, C_in, k), as CausalConv1d); on
    ``[C, H, W]`` inputs a stride-1 conv2d with 'same' zero padding (weight (C_out, C_in, k, k),
    centre tap at (k // 2, k // 2), k - 1 - k // 2 rows/columns of padding after). J is not
    surjective, so Phase II stores the whole h_out (a full fragment, one activation).
    """

    weight: Array
    bias: Array
    type_name = "stem"
    surjective = False
    param_names = ("weight", "bias")

    def __init__(self, weight: Array, bias: Array, *, index: int = -1) -> None:
        if weight.ndim not in (3, 4):
            raise ValueError(f"Stem weight {tuple(weight.shape)}: use (C_out, C_in, k) for 1D "
                             "or (C_out, C_in, k, k) for 2D")
        self.weight, self.bias, self.index = weight, bias, index

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Stem:
        c_in, c_out, k = spec.in_shape[0], spec["channels"], spec["kernel_size"]
        if len(spec.in_shape) == 2:
            if ctx.init == "orthogonal":
                w, b = _orthogonal_taps(ctx, c_out, c_in, k, TAP_SCALE), ctx.zeros(c_out)
            else:
                w, b = _default_conv_init(ctx, c_out, c_in, k)
            return cls(w, b, index=spec.index)
        if ctx.init == "orthogonal":
            # centre tap orthogonal, the other k² - 1 taps Gaussian of spectral norm ~TAP_SCALE
            w = np.zeros((c_out, c_in, k, k))
            std = TAP_SCALE / (math.sqrt(c_out) + math.sqrt(c_in))
            for i in range(k):
                for j in range(k):
                    w[..., i, j] = np.asarray(ctx.normal(c_out, c_in, std=std), np.float64)
            w[..., k // 2, k // 2] = np.asarray(ctx.orthogonal(c_out, c_in), np.float64)
            return cls(ctx._cast(w), ctx.zeros(c_out), index=spec.index)
        bound = 1 / math.sqrt(c_in * k * k)  # torch's nn.Conv2d default
        return cls(ctx.uniform(c_out, c_in, k, k, bound=bound), ctx.uniform(c_out, bound=bound),
                   index=spec.index)

    def _taps(self) -> np.ndarray:
        k = self.weight.shape[-1]
        return np.ones((k, k), dtype=bool)

    def _forward(self, x_in: Array) -> Array:
        if self.weight.ndim == 3:
            return _causal_forward(x_in, self.weight, self.bias, 1)
        return tap_forward(x_in, self.weight, self._taps(), False) + self.bias[None, :, None,
                                                                               None]

    def forward_and_param_vjp(self, x_in: Array, h_out: Array
                              ) -> tuple[Array, dict[str, Array]]:
        if self.weight.ndim == 3:  # Note: [direct parameter vjp]
            return self._forward(x_in), _causal_param_vjp(x_in, h_out, self.weight.shape[-1], 1)
        return super().forward_and_param_vjp(x_in, h_out)

    def _vjp(self, res: None, h_out: Array) -> Array:
        del res
        if self.weight.ndim == 3:
            return _causal_vjp(h_out, self.weight, 1)
        return tap_vjp(h_out, self.weight, self._taps(), False)
