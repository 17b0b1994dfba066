"""What a gradient computation returns besides the gradients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
from jax import Array

from .._plan import LayerPlan

__all__ = ["GradientResult", "LayerPlan"]


@dataclass
class GradientResult:
    """Loss, gradients and what the method measured about itself.

    A pytree (loss, grads, self_check and info are its children; stored_bytes and plan are
    static), so a jitted function can return it.

    Attributes:
        loss: the scalar loss.
        grads: parameter gradients keyed like ``named_parameters()``.
        self_check: Moonwalk's a-posteriori error estimate: relative difference between the
            reconstructed h_L and dL/dx_L recomputed at the end of Phase III (None for methods
            without one; a float outside ``jit``, a scalar array inside it).
        stored_bytes: what the method held between phases, by category, plus "total" (from
            shapes and dtypes, so known at trace time).
        plan: per-layer storage plan Moonwalk used (empty for other methods).
        info: anything else a method reports (e.g. segments of Checkpointed, Moonwalk's
            restart_checks).
    """

    loss: Array
    grads: dict[str, Array]
    self_check: Array | float | None = None
    stored_bytes: dict[str, int] = field(default_factory=dict)
    plan: list[LayerPlan] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


jax.tree_util.register_dataclass(
    GradientResult, data_fields=["loss", "grads", "self_check", "info"],
    meta_fields=["stored_bytes", "plan"],
)
