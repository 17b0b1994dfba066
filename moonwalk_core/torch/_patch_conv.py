"""Patch convolutions (stride = kernel = p): each output position sees its own input patch."""

from __future__ import annotations

import math

from torch import Tensor, nn

from .._conditioning import matrix_condition
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext, host
from ._layout import as_image, conv1d, conv1d_param_vjp, conv_transpose1d, time_major
from ._solve import right_solve

__all__ = ["PatchConv1d"]


class PatchConv1d(AbstractLayer):
    """C_in -> C_out conv with stride = kernel = p; surjective when C_out <= p·C_in and the
    flattened weight W (C_out, C_in·p) has full row rank.

    vijp: per patch, ``h_out = h_patch Wᵀ (W Wᵀ)⁻¹``, all patches in one batched solve.
    """

    type_name = "patch_conv1d"
    surjective = True

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        c_out, c_in, p = weight.shape
        if c_out > c_in * p:
            raise ValueError(f"PatchConv1d weight {tuple(weight.shape)}: needs (C_out, C_in, p) "
                             "with C_out <= C_in·p")
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> PatchConv1d:
        c_in, c_out, p = spec.in_shape[0], spec["channels"], spec["patch"]
        if ctx.init == "orthogonal":
            w = ctx.orthogonal(c_out, c_in * p).reshape(c_out, c_in, p)
            b = ctx.empty(c_out).zero_()
        else:
            bound = 1 / math.sqrt(c_in * p)
            w, b = ctx.uniform(c_out, c_in, p, bound=bound), ctx.uniform(c_out, bound=bound)
        return cls(w, b)

    @property
    def patch(self) -> int:
        return self.weight.shape[-1]

    def _forward(self, x_in: Tensor) -> Tensor:
        # time-major in and out (Note: [time-major activations])
        return conv1d(as_image(time_major(x_in)), self.weight, self.bias, stride=self.patch)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        return conv_transpose1d(h_out, self.weight, stride=self.patch)

    def forward_and_param_vjp(self, x_in: Tensor, h_out: Tensor
                              ) -> tuple[Tensor, dict[str, Tensor]]:
        return conv1d_param_vjp(as_image(time_major(x_in)), h_out, self.weight, self.bias,
                                stride=self.patch)

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: None, constants: None) -> Tensor:
        del x_in, frag, constants
        batch, c_in, length = h_in.shape
        p = self.patch
        # each patch flattened time-major, (p, C_in), and the weight's columns to match
        patches = time_major(h_in).view(batch, length // p, p * c_in)
        weight = self.weight.transpose(1, 2).reshape(self.weight.shape[0], p * c_in)
        return right_solve(weight, patches).transpose(1, 2)  # (B, C_out, T'), time-major

    def condition(self) -> dict[str, float]:
        return {"amplification": matrix_condition(host(self.weight.flatten(1)))}
