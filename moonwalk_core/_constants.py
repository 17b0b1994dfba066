"""Numbers that define the layers and their default init, the same in both backends
(docs/layers.md; the init: docs/method.md, 'Error growth')."""

from __future__ import annotations

__all__ = ["TAP_SCALE", "TAP_NORM_SUM", "BRANCH_SLOPE", "BRANCH_GAIN"]

TAP_SCALE = 0.5
"""Default init of 1D convs (and of the stems): spectral norm of each non-lag-0 tap (about),
the lag-0 tap orthogonal, so that the back-substitution stays stable."""

TAP_NORM_SUM = 0.5
"""Default init of conv2d: sum of the spectral norms of the non-centre taps, the centre tap
orthogonal. Below 1, the masked substitution is a contraction (errors stay below
δ / (1 - 0.5)) and every K̂(ω) of the circular mode has condition number at most
(1 + 0.5) / (1 - 0.5) = 3."""

BRANCH_SLOPE = 0.1
"""Negative slope of the leaky ReLU inside a RevNet coupling's branches F and G (any slope
works: F and G are never inverted)."""

BRANCH_GAIN = 0.5
"""Default 'orthogonal' init of a coupling: scale of the output conv of F and G (input conv:
gain 1), so each coupling stays near the identity and its inverse well-conditioned."""
