"""Elementwise activations: LeakyReLU (submersive) and ReLU (fragmental)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax import Array

from .._conditioning import leaky_relu_condition
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext
from ._containers import SignMask, pack_mask

__all__ = ["LeakyReLU", "NegativeUnitsFragment", "ReLU", "ReLUFragment"]


class NegativeUnitsFragment(eqx.Module):
    """h_out at a leaky ReLU's negative units (``x_in <= 0``), zeros elsewhere.

    Optional (the layer is surjective): stored instead of dividing h_in by the slope there, so
    the vijp amplifies no error (docs/method.md, 'Error growth'; chosen by
    ``checkpoint_every="auto"`` in the torch backend: here it is never cheaper than a
    checkpoint).
    Full activation shape, as ReLUFragment (Note: [static shapes]).
    """

    values: Array


class LeakyReLU(AbstractLayer):
    """``x_out = x_in`` where ``x_in > 0``, else ``slope * x_in``; J is diagonal, never singular.

    Residual: the sign mask (``x_in <= 0``), bit-packed. vijp divides by the derivative.
    """

    negative_slope: float = eqx.field(static=True)
    type_name = "leaky_relu"
    surjective = True
    offers_negative_units = True

    def __init__(self, negative_slope: float = 0.5, *, index: int = -1) -> None:
        if not negative_slope > 0:
            raise ValueError(f"LeakyReLU(negative_slope={negative_slope!r}): use a float > 0")
        self.negative_slope = float(negative_slope)
        self.index = index

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> LeakyReLU:
        del ctx
        return cls(spec["negative_slope"], index=spec.index)

    def _forward(self, x_in: Array) -> Array:
        return jnp.where(x_in > 0, x_in, self.negative_slope * x_in)

    def _residual(self, x_in: Array, x_out: Array, pack_residuals: bool) -> SignMask:
        del x_out
        # the derivative is 1 where x > 0 and the slope elsewhere (x = 0 too), as in _forward
        return pack_mask(x_in <= 0, pack_residuals)

    def _vjp(self, res: SignMask, h_out: Array) -> Array:
        return h_out * res.factor(self.negative_slope, 1.0, h_out)

    def negative_units_fragment(self, res: SignMask, h_out: Array) -> NegativeUnitsFragment:
        """Phase II, optional: h_out at the negative units, where the vijp would divide."""
        zero = jnp.zeros((), dtype=h_out.dtype)
        return NegativeUnitsFragment(jnp.where(res.unpack().reshape(h_out.shape), h_out, zero))

    def _vijp(self, x_in: Array, h_in: Array, frag: NegativeUnitsFragment | None,
              constants: None) -> Array:
        del constants
        if frag is not None:  # positive units: h_out = h_in exactly; negative ones: stored
            return jnp.where(x_in <= 0, frag.values, h_in)
        slope = jnp.asarray(self.negative_slope, dtype=h_in.dtype)
        return jnp.where(x_in <= 0, h_in / slope, h_in)

    def condition(self) -> dict[str, float]:
        return leaky_relu_condition(self.negative_slope)


class ReLUFragment(eqx.Module):
    """h_out at the inactive units: the part ReLU's vjp erases.

    # Note: [static shapes]
    XLA needs static shapes, so ``values`` has the activation's shape with zeros at the active
    units (torch keeps only the inactive values, ``masked_select``); its bytes are one
    activation, an upper bound of the fragment's true size.
    """

    values: Array


class ReLU(AbstractLayer):
    """``x_out = max(x_in, 0)``; J erases inactive units, whose h_out is the fragment."""

    type_name = "relu"
    surjective = False

    def __init__(self, *, index: int = -1) -> None:
        self.index = index

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> ReLU:
        del ctx
        return cls(index=spec.index)

    def _forward(self, x_in: Array) -> Array:
        return jnp.where(x_in > 0, x_in, jnp.zeros((), dtype=x_in.dtype))

    def _residual(self, x_in: Array, x_out: Array, pack_residuals: bool) -> SignMask:
        del x_out
        return pack_mask(x_in > 0, pack_residuals)

    def _vjp(self, res: SignMask, h_out: Array) -> Array:
        return h_out * res.factor(1.0, 0.0, h_out)

    def _fragment(self, res: SignMask, h_out: Array, block_size: int | None) -> ReLUFragment:
        del block_size
        return ReLUFragment(jnp.where(res.unpack(), jnp.zeros((), dtype=h_out.dtype), h_out))

    def _vijp(self, x_in: Array, h_in: Array, frag: ReLUFragment, constants: None) -> Array:
        del constants
        return jnp.where(x_in <= 0, frag.values, h_in)

    def condition(self) -> dict[str, float]:
        """Active units are copied and inactive ones come from the fragment: exact."""
        return {"amplification": 1.0}
