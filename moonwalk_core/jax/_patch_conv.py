"""Patch convolutions (stride = kernel = p): each output position sees its own input patch."""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import Array

from .._conditioning import matrix_condition
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext, host
from ._solve import right_solve

__all__ = ["PatchConv1d"]


class PatchConv1d(AbstractLayer):
    """C_in -> C_out conv with stride = kernel = p; surjective when C_out <= p·C_in and the
    flattened weight W (C_out, C_in·p) has full row rank.

    vijp: per patch, ``h_out = h_patch Wᵀ (W Wᵀ)⁻¹``, all patches in one batched solve.
    """

    weight: Array
    bias: Array
    type_name = "patch_conv1d"
    surjective = True
    param_names = ("weight", "bias")

    def __init__(self, weight: Array, bias: Array, *, index: int = -1) -> None:
        c_out, c_in, p = weight.shape
        if c_out > c_in * p:
            raise ValueError(f"PatchConv1d weight {tuple(weight.shape)}: needs (C_out, C_in, p) "
                             "with C_out <= C_in·p")
        self.weight = weight
        self.bias = bias
        self.index = index

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> PatchConv1d:
        c_in, c_out, p = spec.in_shape[0], spec["channels"], spec["patch"]
        if ctx.init == "orthogonal":
            w = ctx.orthogonal(c_out, c_in * p).reshape(c_out, c_in, p)
            b = ctx.zeros(c_out)
        else:
            bound = 1 / math.sqrt(c_in * p)
            w, b = ctx.uniform(c_out, c_in, p, bound=bound), ctx.uniform(c_out, bound=bound)
        return cls(w, b, index=spec.index)

    @property
    def patch(self) -> int:
        return self.weight.shape[-1]

    def _patches(self, x: Array) -> Array:
        batch, c_in, length = x.shape
        return x.reshape(batch, c_in, length // self.patch, self.patch)  # (B, C_in, T', p)

    def _forward(self, x_in: Array) -> Array:
        out = jnp.einsum("ocp,bctp->bot", self.weight, self._patches(x_in))
        return out + self.bias[None, :, None]

    def _vjp(self, res: None, h_out: Array) -> Array:
        del res
        h_in = jnp.einsum("ocp,bot->bctp", self.weight, h_out)
        return h_in.reshape(h_in.shape[0], h_in.shape[1], -1)

    def _vijp(self, x_in: Array, h_in: Array, frag: None, constants: None) -> Array:
        del x_in, frag, constants
        batch, c_in, length = h_in.shape
        p = self.patch
        patches = self._patches(h_in).transpose(0, 2, 1, 3)  # (B, T', C_in, p)
        flat_w = self.weight.reshape(self.weight.shape[0], -1)
        h_out = right_solve(flat_w, patches.reshape(batch, length // p, c_in * p))
        return h_out.transpose(0, 2, 1)  # (B, C_out, T')

    def condition(self) -> dict[str, float]:
        return {"amplification": matrix_condition(host(self.weight).reshape(
            self.weight.shape[0], -1))}
