"""Dense layers ``x_out = x_in Wᵀ + b`` (features last): one class per algorithm.

:class:`Linear` (n -> m, m <= n): surjective when W has full row rank; vijp
``h_out = h_in Wᵀ (W Wᵀ)⁻¹`` as a product (LU for square W, QR for wide W).
:class:`ExpandingLinear` (m > n): J is not surjective, so Phase II stores the whole h_out.
"""

from __future__ import annotations

import math

from jax import Array

from .._conditioning import matrix_condition
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext, host
from ._solve import right_solve

__all__ = ["Linear", "ExpandingLinear"]


class _Dense(AbstractLayer):
    """What both dense layers share: parameters, init, forward and vjp."""

    weight: Array
    bias: Array
    type_name = "linear"
    param_names = ("weight", "bias")

    def __init__(self, weight: Array, bias: Array, *, index: int = -1) -> None:
        out_features, in_features = weight.shape
        if self.surjective != (out_features <= in_features):
            other = "Linear" if out_features <= in_features else "ExpandingLinear"
            raise ValueError(f"{type(self).__name__} weight {tuple(weight.shape)}: "
                             f"{out_features} outputs from {in_features} inputs is {other}")
        self.weight, self.bias, self.index = weight, bias, index

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> _Dense:
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


class Linear(_Dense):
    """Linear(n -> m), m <= n: surjective when W has full row rank.

    vijp: ``h_out = h_in Wᵀ (W Wᵀ)⁻¹`` as a product (LU for square W, QR for wide W).
    """

    variant = "surjective"
    surjective = True

    def _vijp(self, x_in: Array, h_in: Array, frag: None, constants: None) -> Array:
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
