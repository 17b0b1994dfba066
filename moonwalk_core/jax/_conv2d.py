"""Stride-1 C -> C 2D convolutions with an exact vijp: one class per algorithm (docs/conv2d.md).

Weight (C_out, C_in, k, k) in torch's cross-correlation layout; the centre ("lag-0") tap is
``W_c = weight[..., p, p]`` with ``p = k // 2``, and tap (i, j) reads the input at offset
``(i - p, j - p)``: ``x_out[r, c] = b + sum_{i,j} W_ij x_in[r + i - p, c + j - p]``.

* :class:`MaskedConv2d` (``"mode": "masked"``): a causal raster-order mask keeps the taps before
  the centre (every row above, the columns left of the centre in its own row) and the centre;
  zero padding. vijp: substitution in reverse raster order,
  ``h_out[s] = h_in[s] W_c⁻¹ - sum h_out[s - offset] T_ij`` with ``T_ij = W_ij W_c⁻¹``: a
  ``lax.scan`` up the rows (the rows below enter through one matmul over stacked taps), inside
  it a ``lax.scan`` right to left along the row. With ``block_size = b`` (rows per block) Phase II
  stores h_out in the p rows after each block, so all blocks are solved at once.
* :class:`CircularConv2d` (``"mode": "circular"``): every tap, circular padding; the 2D DFT
  diagonalizes the layer, so ``ĥ_out(ω) = ĥ_in(ω) K̂(ω)⁻¹``: one C x C solve per frequency of
  ``rfft2``, then ``irfft2``.

As in the 1D conv, forward and vjp are one matmul over all taps followed by shifts (XLA's CPU
convolutions are slow, and autodiff then keeps x itself, not k² shifted copies).
:class:`Conv2d` is the common base; ``Conv2d(weight, bias, mode=...)`` builds the class of
``mode``.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from .._blocks import boundary_blocks, solve_blocks
from .._conditioning import (
    causal_mask,
    check_invertible,
    circular_conv2d_condition,
    masked_conv2d_condition,
)
from .._constants import TAP_NORM_SUM
from ..arch import CONV2D_MODES, LayerSpec
from ._base import AbstractLayer, BuildContext, ChoosesFinalClass, host
from ._solve import right_solve, solve_dtype

__all__ = ["Conv2d", "MaskedConv2d", "CircularConv2d", "RowBoundaryFragment", "TAP_NORM_SUM",
           "tap_forward", "tap_vjp"]


class RowBoundaryFragment(eqx.Module):
    """h_out in the p rows after each block of ``block_size`` rows but the last.

    ``values``: (B, n_blocks - 1, p, W, C), channels last; rows past the image are zero.
    """

    values: Array
    block_size: int = eqx.field(static=True)


def _shift2(y: Array, a: int, b: int, circular: bool) -> Array:
    """``z[..., r, c] = y[..., r + a, c + b]``, zero outside the image or wrapped around."""
    if circular:
        return jnp.roll(y, (-a, -b), axis=(-2, -1))
    height, width = y.shape[-2:]
    lead = ((0, 0),) * (y.ndim - 2)
    yp = jnp.pad(y, (*lead, (max(-a, 0), max(a, 0)), (max(-b, 0), max(b, 0))))
    return yp[..., max(a, 0):max(a, 0) + height, max(b, 0):max(b, 0) + width]


def tap_forward(x: Array, weight: Array, taps: np.ndarray, circular: bool) -> Array:
    """``sum_{(i,j) in taps} W_ij x[r + i - p, c + j - p]`` (no bias), 'same' size."""
    p = weight.shape[-1] // 2
    y = jnp.einsum("ocij,bchw->ijbohw", weight, x)
    out = None
    for i, j in zip(*np.nonzero(taps), strict=True):
        term = _shift2(y[i, j], int(i) - p, int(j) - p, circular)
        out = term if out is None else out + term
    return out


def tap_vjp(h_out: Array, weight: Array, taps: np.ndarray, circular: bool) -> Array:
    """The adjoint of :func:`tap_forward` in ``x``."""
    p = weight.shape[-1] // 2
    g = jnp.einsum("ocij,bohw->ijbchw", weight, h_out)
    h_in = None
    for i, j in zip(*np.nonzero(taps), strict=True):
        term = _shift2(g[i, j], p - int(i), p - int(j), circular)
        h_in = term if h_in is None else h_in + term
    return h_in


class Conv2d(AbstractLayer, metaclass=ChoosesFinalClass):
    """Stride-1 C -> C conv2d: the common base of :class:`MaskedConv2d` and
    :class:`CircularConv2d` (weights, init); ``Conv2d(weight, bias, mode)`` builds the class of
    ``mode``.

    Attributes:
        mode: "masked" or "circular" (a class attribute of each final class).
    """

    weight: Array
    bias: Array
    type_name = "conv2d"
    surjective = True
    mode: ClassVar[str]
    param_names = ("weight", "bias")

    @classmethod
    def _final_class(cls, *args: Any, **kwargs: Any) -> type[Conv2d]:
        mode = kwargs.get("mode", args[2] if len(args) > 2 else "masked")
        if mode not in _MODES:
            raise ValueError(f"Conv2d(mode={mode!r}): use one of {CONV2D_MODES}")
        return _MODES[mode]

    def __init__(self, weight: Array, bias: Array, mode: str | None = None, *,
                 index: int = -1) -> None:
        c_out, c_in, k, k2 = weight.shape
        if c_out != c_in or k != k2:
            raise ValueError(f"Conv2d weight {tuple(weight.shape)}: needs (C, C, k, k)")
        if mode is not None and mode != self.mode:
            raise ValueError(f"{type(self).__name__}(mode={mode!r}): this class is mode "
                             f"{self.mode!r}")
        self.weight, self.bias, self.index = weight, bias, index

    @classmethod
    @abc.abstractmethod
    def taps(cls, k: int) -> np.ndarray:
        """(k, k) bool: the taps this mode uses."""

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Conv2d:
        c, k = spec.in_shape[0], spec["kernel_size"]
        mask = cls.taps(k)
        p = k // 2
        if ctx.init == "orthogonal":
            w = np.zeros((c, c, k, k))
            n_taps = int(mask.sum()) - 1
            std = TAP_NORM_SUM / max(n_taps, 1) / (2 * math.sqrt(c))  # ‖G‖ ≈ 2 std √c
            for i, j in zip(*np.nonzero(mask), strict=True):
                if (i, j) != (p, p):
                    w[..., i, j] = np.asarray(ctx.normal(c, c, std=std), dtype=np.float64)
            w[..., p, p] = np.asarray(ctx.orthogonal(c, c), dtype=np.float64)
            return cls(jnp.asarray(w, dtype=ctx.dtype), ctx.zeros(c), index=spec.index)
        bound = 1 / math.sqrt(c * k * k)  # torch's nn.Conv2d default
        w = ctx.uniform(c, c, k, k, bound=bound) * jnp.asarray(mask[None, None], dtype=ctx.dtype)
        return cls(w, ctx.uniform(c, bound=bound), index=spec.index)

    @property
    def kernel_size(self) -> int:
        return self.weight.shape[-1]


class MaskedConv2d(Conv2d):
    """The causal raster-order conv2d: substitution in reverse raster order, row blocks with
    boundary fragments (module docstring; docs/conv2d.md)."""

    variant = mode = "masked"
    block_axis = "rows"
    has_vijp_constants = True

    @classmethod
    def taps(cls, k: int) -> np.ndarray:
        return causal_mask(k)

    def _masked_weight(self) -> Array:
        mask = causal_mask(self.kernel_size)
        return self.weight * jnp.asarray(mask[None, None], dtype=self.weight.dtype)

    def _forward(self, x_in: Array) -> Array:
        out = tap_forward(x_in, self._masked_weight(), causal_mask(self.kernel_size), False)
        return out + self.bias[None, :, None, None]

    def _vjp(self, res: None, h_out: Array) -> Array:
        del res
        return tap_vjp(h_out, self._masked_weight(), causal_mask(self.kernel_size), False)

    def _fragment(self, res: None, h_out: Array, block_size: int | None
                  ) -> RowBoundaryFragment | None:
        del res
        p, height = self.kernel_size // 2, h_out.shape[-2]
        n_blocks = boundary_blocks(height, block_size, p, 1, self._name)
        if not n_blocks:
            return None
        rows = (np.arange(1, n_blocks)[:, None] * block_size + np.arange(p)).reshape(-1)
        padded = jnp.pad(h_out, ((0, 0), (0, 0), (0, n_blocks * block_size + p - height),
                                 (0, 0)))
        values = padded[:, :, rows]  # (B, C, (n_blocks - 1) * p, W)
        batch, channels, _, width = values.shape
        values = values.reshape(batch, channels, n_blocks - 1, p, width)
        return RowBoundaryFragment(values.transpose(0, 2, 3, 4, 1), block_size)

    def check_weights(self) -> None:
        """The centre tap must be invertible (one host copy of the C x C tap)."""
        p = self.kernel_size // 2
        check_invertible(host(self.weight[..., p, p]), layer=self._name,
                         tap_name=f"centre tap weight[..., {p}, {p}]")

    def vijp_constants(self) -> tuple[Array, Array]:
        """``(W_c, T)`` with ``T[i, j] = W_ij W_c⁻¹`` (k, k, C, C) for the masked taps."""
        p, c = self.kernel_size // 2, self.weight.shape[0]
        work = solve_dtype(self.weight.dtype)  # float32 for bfloat16 weights
        w0 = self.weight[..., p, p].astype(work)
        taps = self._masked_weight().astype(work).transpose(2, 3, 0, 1)  # (k, k, C, C)
        t = right_solve(w0, taps.reshape(-1, c)).reshape(taps.shape)
        return w0.astype(self.weight.dtype), t.astype(self.weight.dtype)

    def _vijp(self, x_in: Array, h_in: Array, frag: RowBoundaryFragment | None,
              constants: tuple[Array, Array]) -> Array:
        del x_in
        batch, channels, height, width = h_in.shape
        k = self.kernel_size
        p, left = k // 2, k - 1 - k // 2
        w0, taps = constants
        v = right_solve(w0, h_in.transpose(0, 2, 3, 1))  # h_in W_c⁻¹, (B, H, W, C)
        if p == 0:
            return v.transpose(0, 3, 1, 2)
        block, n_blocks = solve_blocks(height, None if frag is None else frag.block_size, 1,
                                       self._name)
        # positions past the image have h_out = 0, so zero padding keeps the solve exact
        v = jnp.pad(v, ((0, 0), (0, n_blocks * block - height), (0, 0), (0, 0)))
        v = v.reshape(batch * n_blocks, block, width, channels).transpose(1, 0, 2, 3)
        bound = jnp.zeros((batch, n_blocks, p, width, channels), dtype=v.dtype)
        if frag is not None:
            bound = bound.at[:, :-1].set(frag.values)
        # window[:, m] = h_out row r + 1 + m, with `left` zero columns before and p after
        window = jnp.pad(bound.reshape(-1, p, width, channels),
                         ((0, 0), (0, 0), (left, p), (0, 0)))
        # rows below: tap (i < p, j) reads row r + p - i (window p - 1 - i), column c + p - j
        below = [(p - 1 - i, left + p - j, taps[i, j]) for i in range(p) for j in range(k)]
        t_below = jnp.concatenate([t for _, _, t in below], axis=0)  # (p k C, C)
        # along the row: [h[c+1], ..., h[c+p]] @ [T_{p,p-1}; ...; T_{p,0}]
        along = jnp.concatenate([taps[p, j] for j in range(p - 1, -1, -1)], axis=0)

        def col_step(later: Array, u_c: Array) -> tuple[Array, Array]:
            z_c = u_c - later @ along
            return jnp.concatenate([z_c, later[:, :-channels]], axis=1), z_c

        def row_step(window: Array, v_r: Array) -> tuple[Array, Array]:
            stacked = jnp.concatenate([window[:, m, s:s + width] for m, s, _ in below], axis=-1)
            partial = v_r - stacked @ t_below  # (N, W, C)
            start = jnp.zeros((partial.shape[0], p * channels), dtype=partial.dtype)
            _, row = lax.scan(col_step, start, partial.transpose(1, 0, 2), reverse=True)
            row = row.transpose(1, 0, 2)  # (N, W, C)
            full = jnp.pad(row, ((0, 0), (left, p), (0, 0)))
            return jnp.concatenate([full[:, None], window[:, :-1]], axis=1), row

        _, z = lax.scan(row_step, window, v, reverse=True)  # (block, N, W, C)
        h_out = z.transpose(1, 0, 2, 3).reshape(batch, n_blocks * block, width, channels)
        return h_out[:, :height].transpose(0, 3, 1, 2)

    def condition(self) -> dict[str, float]:
        """``amplification`` = κ(W_c), ``symbol_condition``, ``spectral_radius`` of the
        along-row recurrence and ``tap_norm_sum`` (docs/conv2d.md)."""
        return masked_conv2d_condition(host(self.weight))


class CircularConv2d(Conv2d):
    """The circular conv2d: one C x C solve per frequency of the 2D DFT, no fragment (module
    docstring; docs/conv2d.md)."""

    variant = mode = "circular"

    @classmethod
    def taps(cls, k: int) -> np.ndarray:
        return np.ones((k, k), dtype=bool)

    def _forward(self, x_in: Array) -> Array:
        out = tap_forward(x_in, self.weight, self.taps(self.kernel_size), True)
        return out + self.bias[None, :, None, None]

    def _vjp(self, res: None, h_out: Array) -> Array:
        del res
        return tap_vjp(h_out, self.weight, self.taps(self.kernel_size), True)

    def _spectrum(self, height: int, width: int, dtype: Any) -> Array:
        """K̂(ω) = sum_ij W_ij e^{-iω·offset_ij} on rfft2's grid, as (H, W // 2 + 1, C, C),
        from the weight in ``dtype``."""
        k, p = self.kernel_size, self.kernel_size // 2
        kernel = jnp.zeros((*self.weight.shape[:2], height, width), dtype=dtype)
        kernel = kernel.at[..., :k, :k].set(self.weight.astype(dtype))
        kernel = jnp.roll(kernel, (-p, -p), axis=(-2, -1))  # tap (i, j) at its offset
        return jnp.fft.rfft2(kernel).transpose(2, 3, 0, 1)

    def _vijp(self, x_in: Array, h_in: Array, frag: None, constants: None) -> Array:
        del x_in, frag, constants
        height, width = h_in.shape[-2:]
        work = solve_dtype(h_in.dtype)  # float32 for bfloat16: no bfloat16 FFT or solve
        spectrum = self._spectrum(height, width, work)
        h_hat = jnp.fft.rfft2(h_in.astype(work)).transpose(2, 3, 0, 1)  # (H, W//2+1, B, C)
        # X K = ĥ  <=>  Kᵀ Xᵀ = ĥᵀ
        x = jnp.linalg.solve(jnp.swapaxes(spectrum, -1, -2), jnp.swapaxes(h_hat, -1, -2))
        out_hat = jnp.swapaxes(x, -1, -2).transpose(2, 3, 0, 1)
        return jnp.fft.irfft2(out_hat, s=(height, width)).astype(h_in.dtype)

    def condition(self) -> dict[str, float]:
        """``amplification`` = ``symbol_condition`` = max σ(K̂) / min σ(K̂) on a 32 x 32 grid,
        the condition number of J (docs/conv2d.md)."""
        return circular_conv2d_condition(host(self.weight))


_MODES: dict[str, type[Conv2d]] = {"masked": MaskedConv2d, "circular": CircularConv2d}
