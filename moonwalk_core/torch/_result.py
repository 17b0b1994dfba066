"""What a gradient computation returns besides the gradients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = ["GradientResult", "LayerPlan"]


@dataclass(frozen=True)
class LayerPlan:
    """What Moonwalk stores for one layer in Phase II.

    Attributes:
        block_size: the layer's time-block length for a block-wise vijp (None: sequential).
        checkpoint: store the full output cotangent (a cotangent checkpoint) instead of the
            layer's own fragment; Phase III restarts from it.
        reason: why (for the report of an "auto" plan).
        negative_units: a leaky ReLU stores h_out at its negative units (about half an
            activation) so that its vijp never divides by the slope (the "auto" plan's cheaper
            alternative to a checkpoint).
    """

    block_size: int | None = None
    checkpoint: bool = False
    reason: str = ""
    negative_units: bool = False


@dataclass
class GradientResult:
    """Loss, gradients and what the method measured about itself.

    Attributes:
        loss: the scalar loss.
        grads: parameter gradients keyed like ``named_parameters()``.
        self_check: Moonwalk's a-posteriori error estimate: relative difference between the
            reconstructed h_L and dL/dx_L recomputed at the end of Phase III (None for methods
            without one).
        stored_bytes: what the method held between phases, by category, plus "total".
        plan: per-layer storage plan Moonwalk used (empty for other methods).
        info: anything else a method reports (e.g. segments of Checkpointed).
    """

    loss: Tensor
    grads: dict[str, Tensor]
    self_check: float | None = None
    stored_bytes: dict[str, int] = field(default_factory=dict)
    plan: list[LayerPlan] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
