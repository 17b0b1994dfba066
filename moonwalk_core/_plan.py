"""What Moonwalk stores per layer in Phase II: the plan both backends' engines follow.

A plan is one :class:`LayerPlan` per layer. :func:`fixed_plan` makes the plan of
``checkpoint_every=None`` or an int; ``checkpoint_every="auto"`` is chosen from condition
estimates by :func:`moonwalk_core._stability_plan.choose` (docs/method.md, 'Error growth').
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .methods import Moonwalk

__all__ = ["LayerPlan", "fixed_plan"]


@dataclass(frozen=True)
class LayerPlan:
    """What Moonwalk stores for one layer in Phase II.

    Attributes:
        block_size: the layer's block length for a block-wise vijp (None: sequential).
        checkpoint: store the full output cotangent (a cotangent checkpoint) instead of the
            layer's own fragment; Phase III restarts from it.
        reason: why (for the report of an "auto" plan).
        negative_units: a leaky ReLU stores h_out at its negative units (about half an
            activation) so that its vijp never divides by the slope (the "auto" plan's cheaper
            alternative to a checkpoint).
        log_growth: the planner's predicted log error amplification of this layer's vijp
            (0 for fixed plans; -inf for a checkpoint, which restarts from exact values).
        stored_bytes: the planner's estimate of what this choice stores (0 for fixed plans).

    ``log_growth`` and ``stored_bytes`` are estimates: they take no part in comparisons, so
    two layers with the same storage decisions have equal plans.
    """

    block_size: int | None = None
    checkpoint: bool = False
    reason: str = ""
    negative_units: bool = False
    log_growth: float = field(default=0.0, compare=False, repr=False)
    stored_bytes: float = field(default=0.0, compare=False, repr=False)


def fixed_plan(n_layers: int, method: Moonwalk) -> list[LayerPlan]:
    """The plan of ``checkpoint_every`` None or m: every layer keeps ``method.block_size``;
    layer i (1-based) stores its output cotangent h_i when i is a multiple of m, except the
    last (the final self-check needs the reconstructed h_L)."""
    m = method.checkpoint_every
    if m == "auto":
        raise ValueError("fixed_plan: checkpoint_every='auto' is planned from condition "
                         "estimates (the backend's plan_storage)")
    return [LayerPlan(method.block_size,
                      checkpoint=m is not None and (i + 1) % m == 0 and i + 1 < n_layers,
                      reason="every m" if m is not None and (i + 1) % m == 0 else "")
            for i in range(n_layers)]
