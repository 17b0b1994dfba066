"""Non-overlapping pooling (window = stride = size) on [C, T] or [C, H, W] inputs."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax import Array

from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext

__all__ = ["AvgPool", "MaxPool", "ArgmaxIndex"]


def _windows(x: Array, size: int) -> Array:
    """(B, C, *spatial) -> (B, C, *spatial // size, size^d): each window's elements last."""
    batch, channels, *spatial = x.shape
    if len(spatial) == 1:
        return x.reshape(batch, channels, spatial[0] // size, size)
    height, width = spatial
    x = x.reshape(batch, channels, height // size, size, width // size, size)
    return x.transpose(0, 1, 2, 4, 3, 5).reshape(batch, channels, height // size,
                                                 width // size, -1)


def _unwindows(w: Array, size: int) -> Array:
    """Inverse of :func:`_windows`."""
    if w.ndim == 4:
        return w.reshape(*w.shape[:2], -1)
    batch, channels, rows, cols, _ = w.shape
    w = w.reshape(batch, channels, rows, cols, size, size).transpose(0, 1, 2, 4, 3, 5)
    return w.reshape(batch, channels, rows * size, cols * size)


class _Pool(AbstractLayer):
    """What both pools share: the window size; each window's J row block has orthogonal rows of
    equal norm."""

    size: int = eqx.field(static=True)
    surjective = True

    def __init__(self, size: int, *, index: int = -1) -> None:
        if size < 1:
            raise ValueError(f"{type(self).__name__}(size={size!r}): use an int >= 1")
        self.size = size
        self.index = index

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> _Pool:
        del ctx
        return cls(spec["size"], index=spec.index)

    def condition(self) -> dict[str, float]:
        return {"amplification": 1.0}  # J Jᵀ is a multiple of the identity


class AvgPool(_Pool):
    """Mean over each window of n = size^d inputs. ``J Jᵀ = I / n``, so the minimum-norm right
    inverse gives ``h_out = n · mean(h_in over the window) = sum(h_in over the window)``."""

    type_name = "avg_pool"

    def _forward(self, x_in: Array) -> Array:
        return _windows(x_in, self.size).mean(-1)

    def _vjp(self, res: None, h_out: Array) -> Array:
        del res
        n = self.size ** (h_out.ndim - 2)
        return _unwindows(jnp.broadcast_to((h_out / n)[..., None], (*h_out.shape, n)), self.size)

    def _vijp(self, x_in: Array, h_in: Array, frag: None, constants: None) -> Array:
        del x_in, frag, constants
        return _windows(h_in, self.size).sum(-1)


class ArgmaxIndex(eqx.Module):
    """Where each window's maximum is, as an index inside the window (uint8: size^d <= 256)."""

    index: Array


class MaxPool(_Pool):
    """Max over each window (first maximum on ties, as ``torch.max``). J picks one input per
    window, so ``h_out`` is ``h_in`` at the argmax. Residual: the argmax inside each window as
    uint8 (one byte per output element, size^d <= 256); vijp recomputes it from ``x_in``."""

    type_name = "max_pool"

    def _forward(self, x_in: Array) -> Array:
        return _windows(x_in, self.size).max(-1)

    def _residual(self, x_in: Array, x_out: Array, pack_residuals: bool) -> ArgmaxIndex:
        del x_out, pack_residuals
        n = self.size ** (x_in.ndim - 2)
        if n > 256:
            raise ValueError(f"layer {self.index} (max_pool): window of {n} elements does not "
                             "fit a uint8 index; use size^d <= 256")
        return ArgmaxIndex(jnp.argmax(_windows(x_in, self.size), axis=-1).astype(jnp.uint8))

    def _vjp(self, res: ArgmaxIndex, h_out: Array) -> Array:
        n = self.size ** (h_out.ndim - 2)
        window = jnp.arange(n, dtype=jnp.int32).reshape((1,) * h_out.ndim + (n,))
        hit = res.index[..., None].astype(jnp.int32) == window
        w = jnp.where(hit, h_out[..., None], jnp.zeros((), dtype=h_out.dtype))
        return _unwindows(w, self.size)

    def _vijp(self, x_in: Array, h_in: Array, frag: None, constants: None) -> Array:
        del frag, constants
        index = jnp.argmax(_windows(x_in, self.size), axis=-1)[..., None]
        return jnp.take_along_axis(_windows(h_in, self.size), index, axis=-1)[..., 0]
