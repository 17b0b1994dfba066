"""PatchConv2d: stride = kernel = p, each output pixel sees its own p x p input patch."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from .._conditioning import matrix_condition
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext, host
from ._solve import right_solve

__all__ = ["PatchConv2d"]


class PatchConv2d(AbstractLayer):
    """C_in -> C_out conv2d with stride = kernel = p; surjective when C_out <= p²·C_in and the
    flattened weight W (C_out, C_in·p·p) has full row rank.

    vijp: per patch, ``h_out = h_patch Wᵀ (W Wᵀ)⁻¹`` (the minimum-norm right inverse; one LU
    solve when square), all patches in one batched solve.
    """

    type_name = "patch_conv2d"
    surjective = True

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        c_out, c_in, p, p2 = weight.shape
        if p != p2 or c_out > c_in * p * p:
            raise ValueError(f"PatchConv2d weight {tuple(weight.shape)}: needs (C_out, C_in, p, p)"
                             " with C_out <= C_in·p²")
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> PatchConv2d:
        c_in, c_out, p = spec.in_shape[0], spec["channels"], spec["patch"]
        if ctx.init == "orthogonal":
            w = ctx.orthogonal(c_out, c_in * p * p).reshape(c_out, c_in, p, p)
            return cls(w, ctx.empty(c_out).zero_())
        bound = 1 / math.sqrt(c_in * p * p)  # torch's nn.Conv2d default
        return cls(ctx.uniform(c_out, c_in, p, p, bound=bound), ctx.uniform(c_out, bound=bound))

    @property
    def patch(self) -> int:
        return self.weight.shape[-1]

    def _forward(self, x_in: Tensor) -> Tensor:
        return F.conv2d(x_in, self.weight, self.bias, stride=self.patch)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        return F.conv_transpose2d(h_out, self.weight, stride=self.patch)

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: None, constants: None) -> Tensor:
        del x_in, frag, constants
        batch, c_in, height, width = h_in.shape
        p = self.patch
        rows, cols = height // p, width // p
        # (B, C_in, H', p, W', p) -> (B, H', W', C_in, p, p): one row per patch, in W's layout
        patches = h_in.view(batch, c_in, rows, p, cols, p).permute(0, 2, 4, 1, 3, 5)
        h_out = right_solve(self.weight.flatten(1), patches.reshape(batch, rows * cols, -1))
        return h_out.transpose(1, 2).reshape(batch, -1, rows, cols)

    def condition(self) -> dict[str, float]:
        return {"amplification": matrix_condition(host(self.weight.flatten(1)))}

    def extra_repr(self) -> str:
        c_out, c_in, p, _ = self.weight.shape
        return f"index={self.index}, in_channels={c_in}, out_channels={c_out}, patch={p}"
