"""Elementwise activations: LeakyReLU (submersive) and ReLU (fragmental)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .._conditioning import leaky_relu_condition
from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext
from ._containers import DataSize, SignMask, pack_mask
from ._workspace import halo_empty_like

__all__ = ["LeakyReLU", "NegativeUnitsFragment", "ReLU", "ReLUFragment", "ReLUResidual"]


class NegativeUnitsFragment(NamedTuple):
    """h_out at a leaky ReLU's negative units (``x_in <= 0``, in ``masked_select`` order).

    Optional (the layer is surjective): stored instead of dividing h_in by the slope there, so
    the vijp amplifies no error (docs/method.md, 'Error growth'; chosen by
    ``checkpoint_every="auto"``).
    """

    values: Tensor


class LeakyReLU(AbstractLayer):
    """``x_out = x_in`` where ``x_in > 0``, else ``slope * x_in``; J is diagonal, never singular.

    Residual: the sign mask (``x_in <= 0``), bit-packed. vijp divides by the derivative.
    """

    type_name = "leaky_relu"
    surjective = True
    offers_negative_units = True

    def __init__(self, negative_slope: float = 0.5) -> None:
        super().__init__()
        if not negative_slope > 0:
            raise ValueError(f"LeakyReLU(negative_slope={negative_slope!r}): use a float > 0")
        self.negative_slope = float(negative_slope)

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> LeakyReLU:
        del ctx
        return cls(spec["negative_slope"])

    def _forward(self, x_in: Tensor) -> Tensor:
        out = halo_empty_like(x_in)  # Note: [scratch buffers]
        if out is None:
            return F.leaky_relu(x_in, self.negative_slope)
        return torch.ops.aten.leaky_relu.out(x_in, self.negative_slope, out=out)

    def _residual(self, x_in: Tensor, x_out: Tensor, pack_residuals: bool) -> SignMask:
        del x_out
        # autograd's leaky_relu derivative is 1 where x > 0 and the slope elsewhere (x = 0 too)
        return pack_mask(x_in <= 0, pack_residuals)

    def _vjp(self, res: SignMask, h_out: Tensor) -> Tensor:
        return res.factor(self.negative_slope, 1.0, h_out).mul_(h_out)  # one new tensor

    def negative_units_fragment(self, res: SignMask, h_out: Tensor) -> NegativeUnitsFragment:
        """Phase II, optional: h_out at the negative units, where the vijp would divide."""
        return NegativeUnitsFragment(h_out.masked_select(res.unpack().view(h_out.shape)))

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: NegativeUnitsFragment | None,
              constants: None) -> Tensor:
        del constants
        if frag is not None:  # positive units: h_out = h_in exactly; negative ones: stored
            return h_in.masked_scatter(x_in <= 0, frag.values)
        # h_in * (1 where x_in > 0, else 1/slope): autograd's own leaky-ReLU backward kernel
        return torch.ops.aten.leaky_relu_backward(h_in, x_in, 1 / self.negative_slope, False)

    def condition(self) -> dict[str, float]:
        return leaky_relu_condition(self.negative_slope)

    def extra_repr(self) -> str:
        return f"index={self.index}, negative_slope={self.negative_slope}"


class ReLUFragment(NamedTuple):
    """h_out at the inactive units (in ``masked_select`` order): the part ReLU's vjp erases."""

    values: Tensor


class ReLUResidual(NamedTuple):
    """Phase I's record of a ReLU: the active-unit mask and how many units are active (Note:
    [sizes from data] in :mod:`._containers`)."""

    mask: SignMask
    active: DataSize


class ReLU(AbstractLayer):
    """``x_out = max(x_in, 0)``; J erases inactive units, whose h_out is the fragment."""

    type_name = "relu"
    surjective = False

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> ReLU:
        del spec, ctx
        return cls()

    def _forward(self, x_in: Tensor) -> Tensor:
        out = halo_empty_like(x_in)  # Note: [scratch buffers]
        return F.relu(x_in) if out is None else torch.clamp_min(x_in, 0, out=out)

    def _residual(self, x_in: Tensor, x_out: Tensor, pack_residuals: bool) -> ReLUResidual:
        del x_out
        active = x_in > 0
        return ReLUResidual(pack_mask(active, pack_residuals), DataSize(active.sum()))

    def _vjp(self, res: ReLUResidual, h_out: Tensor) -> Tensor:
        return res.mask.factor(1.0, 0.0, h_out).mul_(h_out)

    def _fragment(self, res: ReLUResidual, h_out: Tensor, block_size: int | None
                  ) -> ReLUFragment:
        del block_size
        inactive = ~res.mask.unpack()
        if res.active.value is None:  # a size not resolved by an engine: the host waits here
            return ReLUFragment(h_out.masked_select(inactive))
        # the same elements in the same (row-major) order, gathered with a static size
        index = torch.nonzero_static(inactive.reshape(-1), size=h_out.numel() - res.active.value)
        return ReLUFragment(h_out.take(index.view(-1)))

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: ReLUFragment, constants: None) -> Tensor:
        del constants
        return h_in.masked_scatter(x_in <= 0, frag.values)

    def condition(self) -> dict[str, float]:
        """Active units are copied and inactive ones come from the fragment: exact."""
        return {"amplification": 1.0}
