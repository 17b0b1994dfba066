"""Flatten: (B, *shape) -> (B, prod(shape)); a bijection, so vijp is a reshape."""

from __future__ import annotations

from torch import Tensor

from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext

__all__ = ["Flatten"]


class Flatten(AbstractLayer):
    """Flatten all but the batch axis; remembers the input shape for vjp."""

    type_name = "flatten"
    surjective = True

    def __init__(self, in_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.in_shape = tuple(in_shape)

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> Flatten:
        del ctx
        return cls(spec.in_shape)

    def _forward(self, x_in: Tensor) -> Tensor:
        return x_in.flatten(1)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        return h_out.view(h_out.shape[0], *self.in_shape)

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: None, constants: None) -> Tensor:
        del x_in, frag, constants
        return h_in.flatten(1)

    def condition(self) -> dict[str, float]:
        """A reshape: exact."""
        return {"amplification": 1.0}
