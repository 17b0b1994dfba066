"""Typed residual and fragment containers, bit packing and byte accounting."""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from .._layer import FullFragment

__all__ = ["SignMask", "FullFragment", "pack_mask", "nbytes"]


class SignMask(eqx.Module):
    """A boolean mask of an activation's shape, bit-packed (1 bit per element) or as bools.

    An elementwise activation's vjp needs only which branch each element took, never x_in
    (Note: [why residuals are masks] in :mod:`moonwalk_core._layer`). ``shape`` and ``packed``
    are static, so the mask is a one-leaf pytree.
    """

    bits: Array
    shape: tuple[int, ...] = eqx.field(static=True)
    packed: bool = eqx.field(static=True)

    def unpack(self) -> Array:
        """The mask as a bool array of ``shape``."""
        if not self.packed:
            return self.bits
        n = math.prod(self.shape)
        flat = jnp.unpackbits(self.bits, count=n, bitorder="little")
        return flat.astype(bool).reshape(self.shape)

    def factor(self, if_true: float, if_false: float, like: Array) -> Array:
        """``if_true`` where the mask is set and ``if_false`` elsewhere, shaped and typed like
        ``like``."""
        t, f = (jnp.asarray(v, dtype=like.dtype) for v in (if_true, if_false))
        return jnp.where(self.unpack().reshape(like.shape), t, f)


def pack_mask(mask: Array, packed: bool) -> SignMask:
    """Wrap a bool mask, packing 8 elements per byte when ``packed``."""
    if not packed:
        return SignMask(mask, tuple(mask.shape), False)
    # little bit order: element j of a byte is bit j, as in the torch backend
    bits = jnp.packbits(mask.reshape(-1), bitorder="little")
    return SignMask(bits, tuple(mask.shape), True)


def nbytes(tree: Any) -> int:
    """Bytes held by the arrays in a (nested) container; None and non-arrays count 0.

    Works on concrete arrays and on tracers (shapes and dtypes are static under ``jit``).
    """
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            total += math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize
    return total
