"""Dense layer ``x_out = x_in Wᵀ + b`` (features last)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext
from ._solve import right_solve

__all__ = ["Linear"]


class Linear(AbstractLayer):
    """Linear(n -> m). Surjective when m <= n and W has full row rank; an expanding one (m > n)
    stores its whole output cotangent as the fragment.

    vijp: ``h_out = h_in Wᵀ (W Wᵀ)⁻¹`` as a product (LU for square W, QR for wide W).
    """

    type_name = "linear"

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        out_features, in_features = weight.shape
        self.surjective = out_features <= in_features

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Linear:
        (n,), (m,) = spec.in_shape, spec.out_shape
        if ctx.init == "orthogonal":
            weight, bias = ctx.orthogonal(m, n), ctx.empty(m).zero_()
        else:  # torch's default nn.Linear init
            bound = 1 / math.sqrt(n)
            weight, bias = ctx.uniform(m, n, bound=bound), ctx.uniform(m, bound=bound)
        return cls(weight, bias)

    def _forward(self, x_in: Tensor) -> Tensor:
        return torch.nn.functional.linear(x_in, self.weight, self.bias)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        return h_out @ self.weight

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: None) -> Tensor:
        del x_in, frag
        return right_solve(self.weight, h_in)

    def condition(self) -> dict[str, float]:
        s = torch.linalg.svdvals(self.weight.detach().double())
        return {"amplification": float(s[0] / s[-1])}

    def extra_repr(self) -> str:
        m, n = self.weight.shape
        return f"index={self.index}, in_features={n}, out_features={m}"
