"""Dense layers ``x_out = x_in Wᵀ + b`` (features last): one class per algorithm.

:class:`Linear` (n -> m, m <= n): surjective when W has full row rank; vijp
``h_out = h_in Wᵀ (W Wᵀ)⁻¹`` as a product (LU for square W, QR for wide W).
:class:`ExpandingLinear` (m > n): J is not surjective, so Phase II stores the whole h_out.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._conditioning import matrix_condition
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext, host
from ._solve import right_solve

__all__ = ["Linear", "ExpandingLinear"]


class _Dense(AbstractLayer):
    """What both dense layers share: parameters, init, forward and vjp."""

    type_name = "linear"

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        out_features, in_features = weight.shape
        if self.surjective != (out_features <= in_features):
            other = "Linear" if out_features <= in_features else "ExpandingLinear"
            raise ValueError(f"{type(self).__name__} weight {tuple(weight.shape)}: "
                             f"{out_features} outputs from {in_features} inputs is {other}")
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> _Dense:
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

    def extra_repr(self) -> str:
        m, n = self.weight.shape
        return f"index={self.index}, in_features={n}, out_features={m}"


class Linear(_Dense):
    """Linear(n -> m), m <= n: surjective when W has full row rank.

    vijp: ``h_out = h_in Wᵀ (W Wᵀ)⁻¹`` as a product (LU for square W, QR for wide W).
    """

    variant = "surjective"
    surjective = True

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: None, constants: None) -> Tensor:
        del x_in, frag, constants
        return right_solve(self.weight, h_in)

    def condition(self) -> dict[str, float]:
        return {"amplification": matrix_condition(host(self.weight))}


class ExpandingLinear(_Dense):
    """Linear(n -> m), m > n: Phase II stores the whole output cotangent as the fragment."""

    variant = "expanding"
    surjective = False

    def condition(self) -> dict[str, float]:
        """Exact: Phase III takes the stored h_out, never a solve."""
        return {"amplification": 1.0}
