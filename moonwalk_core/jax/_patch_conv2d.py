"""PatchConv2d: stride = kernel = p, each output pixel sees its own p x p input patch."""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import Array

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

    weight: Array
    bias: Array
    type_name = "patch_conv2d"
    surjective = True
    param_names = ("weight", "bias")

    def __init__(self, weight: Array, bias: Array, *, index: int = -1) -> None:
        c_out, c_in, p, p2 = weight.shape
        if p != p2 or c_out > c_in * p * p:
            raise ValueError(f"PatchConv2d weight {tuple(weight.shape)}: needs (C_out, C_in, p, p)"
                             " with C_out <= C_in·p²")
        self.weight = weight
        self.bias = bias
        self.index = index

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> PatchConv2d:
        c_in, c_out, p = spec.in_shape[0], spec["channels"], spec["patch"]
        if ctx.init == "orthogonal":
            w = ctx.orthogonal(c_out, c_in * p * p).reshape(c_out, c_in, p, p)
            return cls(w, ctx.zeros(c_out), index=spec.index)
        bound = 1 / math.sqrt(c_in * p * p)  # torch's nn.Conv2d default
        return cls(ctx.uniform(c_out, c_in, p, p, bound=bound), ctx.uniform(c_out, bound=bound),
                   index=spec.index)

    @property
    def patch(self) -> int:
        return self.weight.shape[-1]

    def _patches(self, x: Array) -> Array:
        batch, c_in, height, width = x.shape
        p = self.patch
        return x.reshape(batch, c_in, height // p, p, width // p, p)  # (B, C, H', p, W', p)

    def _forward(self, x_in: Array) -> Array:
        out = jnp.einsum("ocij,bcrisj->bors", self.weight, self._patches(x_in))
        return out + self.bias[None, :, None, None]

    def _vjp(self, res: None, h_out: Array) -> Array:
        del res
        h = jnp.einsum("ocij,bors->bcrisj", self.weight, h_out)
        batch, c_in, rows, p, cols, _ = h.shape
        return h.reshape(batch, c_in, rows * p, cols * p)

    def _vijp(self, x_in: Array, h_in: Array, frag: None, constants: None) -> Array:
        del x_in, frag, constants
        batch, c_in, height, width = h_in.shape
        p = self.patch
        rows, cols = height // p, width // p
        # (B, C_in, H', p, W', p) -> (B, H', W', C_in, p, p): one row per patch, in W's layout
        patches = self._patches(h_in).transpose(0, 2, 4, 1, 3, 5)
        flat_w = self.weight.reshape(self.weight.shape[0], -1)
        h_out = right_solve(flat_w, patches.reshape(batch, rows * cols, -1))
        return h_out.transpose(0, 2, 1).reshape(batch, -1, rows, cols)

    def condition(self) -> dict[str, float]:
        return {"amplification": matrix_condition(host(self.weight).reshape(
            self.weight.shape[0], -1))}
