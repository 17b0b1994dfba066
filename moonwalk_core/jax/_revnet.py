"""RevNet coupling block (the 2024 paper's RevNets): ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``."""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

from .._conditioning import branch_lipschitz, branch_rms_gain, coupling_condition
from .._constants import BRANCH_GAIN, BRANCH_SLOPE
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext, host
from ._causal_conv import _shift
from ._containers import SignMask, pack_mask
from ._conv2d import tap_forward, tap_vjp

__all__ = ["RevNetCoupling", "ConvBlock", "RevNetResidual", "BRANCH_SLOPE", "BRANCH_GAIN"]


def _same_conv(x: Array, weight: Array) -> Array:
    """'same' zero-padded correlation with an odd kernel, 1D or 2D (no bias)."""
    k = weight.shape[-1]
    if weight.ndim == 4:
        return tap_forward(x, weight, np.ones((k, k), dtype=bool), False)
    y = jnp.einsum("ocj,bct->jbot", weight, x)  # tap j reads x[t + j - p]
    return sum(_shift(y[j], k // 2 - j) for j in range(k))


def _same_conv_t(h: Array, weight: Array) -> Array:
    """The adjoint of :func:`_same_conv` in ``x``."""
    k = weight.shape[-1]
    if weight.ndim == 4:
        return tap_vjp(h, weight, np.ones((k, k), dtype=bool), False)
    g = jnp.einsum("ocj,bot->jbct", weight, h)
    return sum(_shift(g[j], j - k // 2) for j in range(k))


def _bias(b: Array, ndim: int) -> Array:
    return b.reshape(1, -1, *([1] * (ndim - 2)))


class ConvBlock(eqx.Module):
    """``conv_out(leaky_relu(conv_in(x)))``, 'same' zero padding, odd kernel, 1D or 2D."""

    weight_in: Array
    bias_in: Array
    weight_out: Array
    bias_out: Array

    @classmethod
    def init(cls, ctx: BuildContext, channels: int, hidden: int, k: int, rank: int) -> ConvBlock:
        taps = k ** rank
        kernel = (k,) * rank
        if ctx.init == "orthogonal":
            w_in = ctx.orthogonal(hidden, channels * taps).reshape(hidden, channels, *kernel)
            w_out = ctx.orthogonal(channels, hidden * taps).reshape(channels, hidden, *kernel)
            return cls(w_in, ctx.zeros(hidden), w_out * BRANCH_GAIN, ctx.zeros(channels))
        b_in, b_out = 1 / math.sqrt(channels * taps), 1 / math.sqrt(hidden * taps)
        return cls(ctx.uniform(hidden, channels, *kernel, bound=b_in),
                   ctx.uniform(hidden, bound=b_in),
                   ctx.uniform(channels, hidden, *kernel, bound=b_out),
                   ctx.uniform(channels, bound=b_out))

    def pre_activation(self, x: Array) -> Array:
        return _same_conv(x, self.weight_in) + _bias(self.bias_in, x.ndim)

    def __call__(self, x: Array) -> Array:
        pre = self.pre_activation(x)
        hidden = jnp.where(pre > 0, pre, BRANCH_SLOPE * pre)
        return _same_conv(hidden, self.weight_out) + _bias(self.bias_out, x.ndim)

    def vjp(self, negative: Array, h: Array) -> Array:
        """``h · dF/dx`` given where the pre-activation is <= 0 (weights only otherwise)."""
        h_hidden = _same_conv_t(h, self.weight_out)
        slope = jnp.asarray(BRANCH_SLOPE, dtype=h.dtype)
        h_hidden = h_hidden * jnp.where(negative, slope, jnp.ones((), dtype=h.dtype))
        return _same_conv_t(h_hidden, self.weight_in)

    def host_weights(self) -> tuple:
        """``(weight_in, weight_out)`` as NumPy arrays (one host copy each)."""
        return host(self.weight_in), host(self.weight_out)

    def rms_gain(self) -> float:
        """Mean-square gain of dF/dx on a random direction (``branch_rms_gain``)."""
        return branch_rms_gain(*self.host_weights(), BRANCH_SLOPE)

    def lipschitz(self) -> float:
        """Upper bound on F's Lipschitz constant (``branch_lipschitz``)."""
        return branch_lipschitz(*self.host_weights())


class RevNetResidual(eqx.Module):
    """Sign masks (pre-activation <= 0) of F's and G's hidden layers: all the vjp needs."""

    f_negative: SignMask
    g_negative: SignMask


def _halves(x: Array) -> tuple[Array, Array]:
    half = x.shape[1] // 2
    return x[:, :half], x[:, half:]


class RevNetCoupling(AbstractLayer):
    """Additive coupling on the two channel halves: ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``.

    Bijective, hence surjective. With ``a = h_x1``:
    vjp: ``a = h_y1 + h_y2·G'(y1)``, ``h_x1 = a``, ``h_x2 = h_y2 + a·F'(x2)``;
    vijp (two vjps, no matrix inverse): ``h_y2 = h_x2 - h_x1·F'(x2)``,
    ``h_y1 = h_x1 - h_y2·G'(y1)`` with ``y1 = x1 + F(x2)`` recomputed from ``x_in``;
    inverse: ``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)`` (used by RevBackprop).
    """

    f: ConvBlock
    g: ConvBlock
    type_name = "revnet_coupling"
    surjective = True
    reversible = True
    param_names = tuple(f"{b}.{w}" for b in "fg"
                        for w in ("weight_in", "bias_in", "weight_out", "bias_out"))

    def __init__(self, f: ConvBlock, g: ConvBlock, *, index: int = -1) -> None:
        self.f, self.g, self.index = f, g, index

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> RevNetCoupling:
        half, rank = spec.in_shape[0] // 2, len(spec.in_shape) - 1
        k, hidden = spec["kernel_size"], spec["hidden"]
        return cls(ConvBlock.init(ctx, half, hidden, k, rank),
                   ConvBlock.init(ctx, half, hidden, k, rank), index=spec.index)

    def _forward(self, x_in: Array) -> Array:
        x1, x2 = _halves(x_in)
        y1 = x1 + self.f(x2)
        return jnp.concatenate([y1, x2 + self.g(y1)], axis=1)

    def _residual(self, x_in: Array, x_out: Array, pack_residuals: bool) -> RevNetResidual:
        x2, y1 = _halves(x_in)[1], _halves(x_out)[0]
        return RevNetResidual(pack_mask(self.f.pre_activation(x2) <= 0, pack_residuals),
                              pack_mask(self.g.pre_activation(y1) <= 0, pack_residuals))

    def _vjp(self, res: RevNetResidual, h_out: Array) -> Array:
        h_y1, h_y2 = _halves(h_out)
        a = h_y1 + self.g.vjp(res.g_negative.unpack(), h_y2)
        return jnp.concatenate([a, h_y2 + self.f.vjp(res.f_negative.unpack(), a)], axis=1)

    def _vijp(self, x_in: Array, h_in: Array, frag: None, constants: None) -> Array:
        del frag, constants
        x1, x2 = _halves(x_in)
        h_x1, h_x2 = _halves(h_in)
        y1 = x1 + self.f(x2)
        h_y2 = h_x2 - self.f.vjp(self.f.pre_activation(x2) <= 0, h_x1)
        h_y1 = h_x1 - self.g.vjp(self.g.pre_activation(y1) <= 0, h_y2)
        return jnp.concatenate([h_y1, h_y2], axis=1)

    def inverse(self, x_out: Array) -> Array:
        """``x_in`` from ``x_out``: ``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)``."""
        y1, y2 = _halves(x_out)
        x2 = y2 - self.g(y1)
        return jnp.concatenate([y1 - self.f(x2), x2], axis=1)

    def condition(self) -> dict[str, float]:
        """Amplification estimates of the vijp, from weight norms (``coupling_condition``):
        ``amplification``, ``amplification_bound``, ``lipschitz_f``, ``lipschitz_g``."""
        return coupling_condition(self.f.host_weights(), self.g.host_weights(), BRANCH_SLOPE)
