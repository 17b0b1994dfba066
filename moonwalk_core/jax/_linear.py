"""Dense layer ``x_out = x_in Wᵀ + b`` (features last)."""

from __future__ import annotations

import math

import numpy as np
from jax import Array

from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext
from ._solve import right_solve

__all__ = ["Linear"]


class Linear(AbstractLayer):
    """Linear(n -> m). Surjective when m <= n and W has full row rank; an expanding one (m > n)
    stores its whole output cotangent as the fragment.

    vijp: ``h_out = h_in Wᵀ (W Wᵀ)⁻¹`` as a product (LU for square W, QR for wide W).
    """

    weight: Array
    bias: Array
    type_name = "linear"
    param_names = ("weight", "bias")

    def __init__(self, weight: Array, bias: Array, *, index: int = -1) -> None:
        self.weight = weight
        self.bias = bias
        self.index = index

    @property
    def surjective(self) -> bool:  # type: ignore[override]
        out_features, in_features = self.weight.shape
        return out_features <= in_features

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Linear:
        (n,), (m,) = spec.in_shape, spec.out_shape
        if ctx.init == "orthogonal":
            weight, bias = ctx.orthogonal(m, n), ctx.zeros(m)
        else:  # torch's default nn.Linear init, the same distribution in both backends
            bound = 1 / math.sqrt(n)
            weight, bias = ctx.uniform(m, n, bound=bound), ctx.uniform(m, bound=bound)
        return cls(weight, bias, index=spec.index)

    def _forward(self, x_in: Array) -> Array:
        return x_in @ self.weight.T + self.bias[None, :]

    def _vjp(self, res: None, h_out: Array) -> Array:
        del res
        return h_out @ self.weight

    def _vijp(self, x_in: Array, h_in: Array, frag: None) -> Array:
        del x_in, frag
        return right_solve(self.weight, h_in)

    def condition(self) -> dict[str, float]:
        s = np.linalg.svd(np.asarray(self.weight, dtype=np.float64), compute_uv=False)
        return {"amplification": float(s[0] / s[-1])}
