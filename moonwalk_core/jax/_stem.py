"""The channel-expanding stem: the first conv of the 1D and 2D families (full fragment).

One class per input rank: :class:`Stem1d` (a causal conv1d, as CausalConv1d) and
:class:`Stem2d` (a 'same' zero-padded conv2d); :class:`Stem` is their base, and
``Stem(weight, bias)`` builds the class of the weight's rank.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from jax import Array

from .._constants import TAP_SCALE
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext, ChoosesFinalClass
from ._causal_conv import (
    _causal_forward,
    _causal_param_vjp,
    _causal_vjp,
    _default_conv_init,
    _orthogonal_taps,
)
from ._conv2d import tap_forward, tap_vjp

__all__ = ["Stem", "Stem1d", "Stem2d"]


class Stem(AbstractLayer, metaclass=ChoosesFinalClass):
    """Channel-expanding conv C_in -> C_out (C_out >= C_in): J is not surjective, so Phase II
    stores the whole h_out (a full fragment, one activation) and Phase III never inverts it.
    """

    weight: Array
    bias: Array
    type_name = "stem"
    surjective = False
    param_names = ("weight", "bias")
    _rank: ClassVar[int]

    @classmethod
    def _final_class(cls, *args: Any, **kwargs: Any) -> type[Stem]:
        weight = kwargs.get("weight", args[0] if args else None)
        ndim = getattr(weight, "ndim", None)
        if ndim not in (3, 4):
            raise ValueError(f"Stem weight {tuple(getattr(weight, 'shape', ()))}: use "
                             "(C_out, C_in, k) for 1D or (C_out, C_in, k, k) for 2D")
        return Stem1d if ndim == 3 else Stem2d

    def __init__(self, weight: Array, bias: Array, *, index: int = -1) -> None:
        if weight.ndim != self._rank + 2:
            raise ValueError(f"{type(self).__name__} weight {tuple(weight.shape)}: needs "
                             f"{self._rank + 2} dimensions (C_out, C_in{', k' * self._rank})")
        self.weight, self.bias, self.index = weight, bias, index

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
            w, b = _orthogonal_taps(ctx, c_out, c_in, k, TAP_SCALE), ctx.zeros(c_out)
        else:
            w, b = _default_conv_init(ctx, c_out, c_in, k)
        return cls(w, b, index=spec.index)

    def _forward(self, x_in: Array) -> Array:
        return _causal_forward(x_in, self.weight, self.bias, 1)

    def forward_and_param_vjp(self, x_in: Array, h_out: Array
                              ) -> tuple[Array, dict[str, Array]]:
        """Forward and the parameter vjp written out (Note: [direct parameter vjp])."""
        return self._forward(x_in), _causal_param_vjp(x_in, h_out, self.weight.shape[-1], 1)

    def _vjp(self, res: None, h_out: Array) -> Array:
        del res
        return _causal_vjp(h_out, self.weight, 1)


class Stem2d(Stem):
    """The 2D stem: a stride-1 conv2d C_in -> C_out with 'same' zero padding, weight
    (C_out, C_in, k, k), centre tap at (k // 2, k // 2)."""

    variant = "2d"
    _rank = 2

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Stem2d:
        c_in, c_out, k = spec.in_shape[0], spec["channels"], spec["kernel_size"]
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
        out = tap_forward(x_in, self.weight, self._taps(), False)
        return out + self.bias[None, :, None, None]

    def _vjp(self, res: None, h_out: Array) -> Array:
        del res
        return tap_vjp(h_out, self.weight, self._taps(), False)
