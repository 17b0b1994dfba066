"""Causal 1D convolution: the C -> C CausalConv1d (the 1D stem, ``Stem1d`` in ``_stem.py``,
shares its forward, vjp and parameter vjp).

``x_out[t] = b + sum_l W_l x_in[t - l d]`` for lags ``l = 0..k-1`` and dilation ``d``; the
weight uses torch's (C_out, C_in, k) layout, so lag ``l`` is ``weight[..., k - 1 - l]``.

# Note: [shifted matmuls]
XLA's CPU convolution is slow for these shapes (long T, many channels, small k), so the forward
and the vjp are sums over taps of one matmul each on a shifted view of the sequence.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from .._blocks import boundary_blocks, solve_blocks
from .._conditioning import causal_conv_condition, check_invertible
from .._constants import TAP_SCALE
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext, host
from ._solve import right_inverse, solve_dtype
from ._toeplitz import FilterInverse, anticausal_solve, filter_inverse

__all__ = ["CausalConv1d", "BoundaryFragment", "TAP_SCALE"]


class BoundaryFragment(eqx.Module):
    """h_out at the (k-1)·d positions after each time block but the last.

    ``values``: (B, n_blocks - 1, (k-1)·d, C), time-major inside a block; ``block_size``: b.
    """

    values: Array
    block_size: int = eqx.field(static=True)


def _shift(y: Array, offset: int) -> Array:
    """``y[..., t - offset]`` with zeros outside (offset > 0: delay; < 0: advance)."""
    length = y.shape[-1]
    if offset == 0:
        return y
    if offset > 0:
        return jnp.pad(y, ((0, 0), (0, 0), (offset, 0)))[..., :length]
    return jnp.pad(y, ((0, 0), (0, 0), (0, -offset)))[..., -offset:]


def _batched_taps(weight: Array, batch: int, transpose: bool) -> Array:
    """The taps stacked as (B, k·C_out, C_in) (or (B, k·C_in, C_out) transposed), broadcast
    over the batch: a batched matmul then writes (B, k·C, T) with no transposes
    (Note: [shifted matmuls])."""
    taps = jnp.moveaxis(weight, -1, 0)  # (k, C_out, C_in)
    if transpose:
        taps = taps.transpose(0, 2, 1)
    taps = taps.reshape(-1, taps.shape[-1])
    return jnp.broadcast_to(taps, (batch, *taps.shape))


def _batched_matmul(a: Array, b: Array) -> Array:
    """``a[n] @ b[n]`` for every n."""
    return lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,))))


def _causal_forward(x: Array, weight: Array, bias: Array, dilation: int) -> Array:
    batch, _, length = x.shape
    c_out, _, k = weight.shape
    # every tap in one matmul on the unshifted input, then shift the products: autodiff then
    # keeps x itself (one activation) for the weight gradient, not k shifted copies
    y = _batched_matmul(_batched_taps(weight, batch, False), x).reshape(batch, k, c_out, length)
    out = bias[None, :, None]
    for j in range(k):  # tap j has lag k - 1 - j: it reads x[t - (k - 1 - j) d]
        out = out + _shift(y[:, j], (k - 1 - j) * dilation)
    return out


def _causal_vjp(h_out: Array, weight: Array, dilation: int) -> Array:
    batch, _, length = h_out.shape
    _, c_in, k = weight.shape
    g = _batched_matmul(_batched_taps(weight, batch, True), h_out).reshape(batch, k, c_in, length)
    h_in = g[:, k - 1]
    for j in range(k - 1):  # the adjoint of tap j: h_in[t] += h_out[t + lag d] W_j
        h_in = h_in + _shift(g[:, j], -(k - 1 - j) * dilation)
    return h_in


def _causal_param_vjp(x: Array, h_out: Array, k: int, dilation: int) -> dict[str, Array]:
    """``h_out · J_theta`` at ``x`` for a causal conv: weight (C_out, C_in, k) and bias.

    # Note: [direct parameter vjp]
    ``dW_l = sum_t h_out[t] x[t - l d]ᵀ``: one batched matmul over the batch (contracting
    time) of h_out with the k shifted copies of x stacked along channels, summed over the
    batch. ``jax.vjp`` of ``_causal_forward`` gives the same numbers but compiles slower.
    Shifting h_out instead of x measured ~10% faster with blocks but ~25% slower for the
    sequential solve (whose h_out XLA keeps time-major), so x is shifted.
    """
    c_out, c_in = h_out.shape[1], x.shape[1]
    shifted = jnp.concatenate([_shift(x, (k - 1 - j) * dilation) for j in range(k)], axis=1)
    g = lax.dot_general(h_out, shifted, (((2,), (2,)), ((0,), (0,))))  # (B, C_out, k C_in)
    weight = g.sum(0).reshape(c_out, k, c_in).transpose(0, 2, 1)
    return {"weight": weight, "bias": h_out.sum((0, 2))}


def _orthogonal_taps(ctx: BuildContext, c_out: int, c_in: int, k: int,
                     tap_scale: float) -> Array:
    """Lag-0 tap orthogonal, other taps Gaussian with spectral norm about ``tap_scale``."""
    taps = [ctx.normal(c_out, c_in, std=tap_scale / (math.sqrt(c_out) + math.sqrt(c_in)))
            for _ in range(k - 1)]
    return jnp.stack([*taps, ctx.orthogonal(c_out, c_in)], axis=-1)


def _default_conv_init(ctx: BuildContext, c_out: int, c_in: int, k: int) -> tuple[Array, Array]:
    bound = 1 / math.sqrt(c_in * k)  # torch's nn.Conv1d default (kaiming_uniform, a=sqrt(5))
    return ctx.uniform(c_out, c_in, k, bound=bound), ctx.uniform(c_out, bound=bound)


SCAN_UNROLL = 4
"""Steps of the back-substitution per ``lax.scan`` iteration (fewer loop trips). Measured on
the benchmark net: 4 and 8 alike, 16 slower (block 128: 1.51-1.54x jax.grad against 1.69-1.72x)."""


class CausalConv1d(AbstractLayer):
    """Causal C -> C convolution; surjective when the lag-0 tap W_0 is invertible.

    vijp: back-substitution backwards in time,
    ``h_out[s] = (h_in[s] - sum_{l>=1} h_out[s + l d] W_l) W_0⁻¹``, over the whole sequence
    (no fragment) or independently per time block of length b, started from the boundary
    fragment (docs/method.md, 'Block-wise reconstruction'). b must be a multiple of d. One
    ``lax.scan`` runs backwards over the steps of a block, all blocks batched.
    """

    weight: Array
    bias: Array
    dilation: int = eqx.field(static=True)
    type_name = "causal_conv1d"
    surjective = True
    block_axis = "time"
    has_vijp_constants = True
    param_names = ("weight", "bias")

    def __init__(self, weight: Array, bias: Array, dilation: int = 1, *, index: int = -1) -> None:
        c_out, c_in, _ = weight.shape
        if c_out != c_in:
            raise ValueError(f"CausalConv1d weight {tuple(weight.shape)}: needs C_out == C_in")
        self.weight = weight
        self.bias = bias
        self.dilation = dilation
        self.index = index

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> CausalConv1d:
        c, k = spec.in_shape[0], spec["kernel_size"]
        if ctx.init == "orthogonal":
            w, b = _orthogonal_taps(ctx, c, c, k, TAP_SCALE), ctx.zeros(c)
        else:
            w, b = _default_conv_init(ctx, c, c, k)
        return cls(w, b, spec["dilation"], index=spec.index)

    @property
    def kernel_size(self) -> int:
        return self.weight.shape[-1]

    @property
    def tail(self) -> int:
        """How many later positions one step of the back-substitution reads: (k-1)·d."""
        return (self.kernel_size - 1) * self.dilation

    def _forward(self, x_in: Array) -> Array:
        return _causal_forward(x_in, self.weight, self.bias, self.dilation)

    def _vjp(self, res: None, h_out: Array) -> Array:
        del res
        return _causal_vjp(h_out, self.weight, self.dilation)

    def forward_and_param_vjp(self, x_in: Array, h_out: Array
                              ) -> tuple[Array, dict[str, Array]]:
        """Forward and the parameter vjp written out (Note: [direct parameter vjp])."""
        return self._forward(x_in), _causal_param_vjp(x_in, h_out, self.kernel_size,
                                                      self.dilation)

    def _fragment(self, res: None, h_out: Array, block_size: int | None
                  ) -> BoundaryFragment | None:
        del res
        length = h_out.shape[-1]
        n_blocks = boundary_blocks(length, block_size, self.tail, self.dilation, self._name)
        if not n_blocks:
            return None
        padded = jnp.pad(h_out, ((0, 0), (0, 0), (0, n_blocks * block_size + self.tail - length)))
        starts = np.arange(1, n_blocks) * block_size
        index = (starts[:, None] + np.arange(self.tail)).reshape(-1)
        values = padded[:, :, index]  # (B, C, (n_blocks - 1) * tail)
        values = values.reshape(h_out.shape[0], h_out.shape[1], n_blocks - 1, self.tail)
        return BoundaryFragment(values.transpose(0, 2, 3, 1), block_size)

    def check_weights(self) -> None:
        """The lag-0 tap must be invertible (one host copy of the C x C tap)."""
        check_invertible(host(self.weight[..., -1]), layer=self._name,
                         tap_name="lag-0 tap weight[..., -1]")

    def vijp_constants(self) -> tuple[Array, Array]:
        """``(W_0⁻¹, M)`` with M = [W_1 W_0⁻¹; ...; W_{k-1} W_0⁻¹] stacked, (k-1)C x C
        (Note: [vijp constants]); W_0's invertibility is checked before the phases
        (:meth:`check_weights`). Computed in :func:`~._solve.solve_dtype` (float32 for
        bfloat16 weights), returned in the weight's dtype: the back-substitution runs in it."""
        weight = self.weight.astype(solve_dtype(self.weight.dtype))
        w0 = weight[..., -1]
        c = w0.shape[0]
        w0_inv = right_inverse(w0)  # one LU factorization serves u and M
        others = jnp.flip(weight[..., :-1], -1).transpose(2, 0, 1)  # lags 1..k-1
        m = others.reshape(-1, c) @ w0_inv  # rows r with r W_0 = (row of W_l)
        return w0_inv.astype(self.weight.dtype), m.astype(self.weight.dtype)

    def filter_taps(self) -> Array:
        """Row-vector taps (k, C, C) in descending lag order, W_{k-1}, ..., W_0 (the FFT
        solver's filter)."""
        return self.weight.transpose(2, 0, 1)

    def filter_steps(self, length: int, frag: BoundaryFragment | None) -> int:
        """Chain steps of one block of the solve; 0 for k = 1 (no solve)."""
        if self.tail == 0:
            return 0
        block, _ = solve_blocks(length, None if frag is None else frag.block_size,
                                self.dilation, self._name)
        return block // self.dilation

    def fft_constants(self, steps: int) -> FilterInverse:
        """The FFT solver's :class:`FilterInverse` for blocks of ``steps`` chain steps."""
        return filter_inverse(jnp.flip(self.filter_taps(), 0), steps)

    def _fft_vijp(self, h_in: Array, frag: BoundaryFragment | None,
                  inverse: FilterInverse) -> Array:
        """All blocks, chains and batch rows as one FFT correlation (no scan over time)."""
        batch, channels, length = h_in.shape
        d, k = self.dilation, self.kernel_size
        block, n_blocks = solve_blocks(length, None if frag is None else frag.block_size, d,
                                       self._name)
        steps = block // d
        u = jnp.pad(h_in.transpose(0, 2, 1), ((0, 0), (0, n_blocks * block - length), (0, 0)))
        u = u.reshape(batch, n_blocks, steps, d, channels).transpose(0, 1, 3, 2, 4)
        if frag is not None and k > 1:
            after = frag.values.reshape(batch, n_blocks - 1, k - 1, d, channels
                                        ).transpose(0, 1, 3, 2, 4)
            solved = anticausal_solve(u[:, :-1], after, inverse)
            h = jnp.concatenate([solved, anticausal_solve(u[:, -1:], None, inverse)], 1)
        else:
            h = anticausal_solve(u, None, inverse)
        h = h.transpose(0, 1, 3, 2, 4).reshape(batch, n_blocks * block, channels)[:, :length]
        return h.transpose(0, 2, 1)

    def _vijp(self, x_in: Array, h_in: Array, frag: BoundaryFragment | None,
              constants: tuple[Array, Array] | FilterInverse) -> Array:
        del x_in
        if isinstance(constants, FilterInverse):
            return self._fft_vijp(h_in, frag, constants)
        batch, channels, length = h_in.shape
        d, k, tail = self.dilation, self.kernel_size, self.tail
        w0_inv, m = constants
        u = jnp.einsum("bct,cd->btd", h_in, w0_inv)  # (B, T, C): h_in W_0⁻¹
        if tail == 0:
            return u.transpose(0, 2, 1)
        block, n_blocks = solve_blocks(length, None if frag is None else frag.block_size, d,
                                       self._name)
        steps = block // d
        # positions past the end have h_out = 0, so zero padding keeps the solve exact
        u = jnp.pad(u, ((0, 0), (0, n_blocks * block - length), (0, 0)))
        tails = jnp.zeros((batch, n_blocks, tail, channels), dtype=u.dtype)
        if frag is not None:
            tails = tails.at[:, :-1].set(frag.values)
        # split time into d interleaved chains: position q*d + p -> chain p, step q;
        # rows n = (batch, block, chain), scanned step-major
        u = u.reshape(batch, n_blocks, steps, d, channels).transpose(2, 0, 1, 3, 4)
        u = u.reshape(steps, -1, channels)
        # the carry: h_out at steps q+1, ..., q+k-1 of every row, one (N, C) array per lag
        window = tails.reshape(batch, n_blocks, k - 1, d, channels).transpose(2, 0, 1, 3, 4)
        later = tuple(window.reshape(k - 1, -1, channels))
        lags = m.reshape(k - 1, channels, channels)

        def step(later: tuple[Array, ...], u_q: Array) -> tuple[tuple[Array, ...], Array]:
            z_q = u_q
            for lag in range(k - 1):
                z_q = z_q - later[lag] @ lags[lag]
            return (z_q, *later[:-1]), z_q

        _, z = lax.scan(step, later, u, reverse=True, unroll=SCAN_UNROLL)  # (steps, N, C)
        z = z.reshape(steps, batch, n_blocks, d, channels).transpose(1, 2, 0, 3, 4)
        h_out = z.reshape(batch, n_blocks * block, channels)[:, :length]
        return h_out.transpose(0, 2, 1)

    def condition(self) -> dict[str, float]:
        return causal_conv_condition(host(self.weight))
