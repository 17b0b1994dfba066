"""What Moonwalk stores per layer in Phase II: the plan both backends' engines follow."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LayerPlan"]


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

