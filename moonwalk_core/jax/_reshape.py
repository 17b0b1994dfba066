"""Flatten: (B, *shape) -> (B, prod(shape)); a bijection, so vijp is a reshape."""

from __future__ import annotations

import equinox as eqx
from jax import Array

from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext

__all__ = ["Flatten"]


class Flatten(AbstractLayer):
    """Flatten all but the batch axis; remembers the input shape for vjp."""

    in_shape: tuple[int, ...] = eqx.field(static=True)
    type_name = "flatten"
    surjective = True

    def __init__(self, in_shape: tuple[int, ...], *, index: int = -1) -> None:
        self.in_shape = tuple(in_shape)
        self.index = index

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Flatten:
        del ctx
        return cls(spec.in_shape, index=spec.index)

    def _forward(self, x_in: Array) -> Array:
        return x_in.reshape(x_in.shape[0], -1)

    def _vjp(self, res: None, h_out: Array) -> Array:
        del res
        return h_out.reshape(h_out.shape[0], *self.in_shape)

    def _vijp(self, x_in: Array, h_in: Array, frag: None, constants: None) -> Array:
        del x_in, frag, constants
        return h_in.reshape(h_in.shape[0], -1)

    def condition(self) -> dict[str, float]:
        """A reshape: exact."""
        return {"amplification": 1.0}
