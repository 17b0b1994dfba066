"""What a gradient computation returns besides the gradients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from .._plan import LayerPlan

__all__ = ["GradientResult", "LayerPlan"]


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
