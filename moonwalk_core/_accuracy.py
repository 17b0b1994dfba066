"""The self-check's verdict, worded once for both backends (docs/method.md, 'Self-check').

A backend measures the self-check (the relative error of the reconstructed h_L, and of every
segment that ends at a cotangent checkpoint) and lists its non-finite gradients; this module
combines the segments, compares with the tolerance and warns or raises.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from .methods import Moonwalk

__all__ = ["MoonwalkAccuracyWarning", "worst_check", "accuracy_message", "report_accuracy"]


class MoonwalkAccuracyWarning(RuntimeWarning):
    """The self-check says the reconstructed cotangents are less accurate than the tolerance."""


def worst_check(checks: Sequence[float]) -> float:
    """The self-check of a run: the first non-finite segment check, else the largest.

    # Note: [self-check at restarts]
    Phase III restarts from a stored cotangent at every checkpoint, so the final comparison of
    h_L sees only the error accumulated since the last restart. Each restart therefore checks the
    segment that ends there: the reconstructed h_{i-1} against vjp(stored h_i) (a vjp is stable,
    so this measures the reconstruction's error). ``checks`` holds the final check and one per
    restart; the run's self-check is the worst.
    """
    return next((c for c in checks if not math.isfinite(c)), max(checks))


def accuracy_message(self_check: float, tolerance: float, dtype: str,
                     nonfinite: Sequence[str]) -> str | None:
    """What is wrong, and what to do, when the gradients cannot be trusted; None when they can.

    Args:
        self_check: the run's self-check (:func:`worst_check`).
        tolerance: the tolerance in force (``Moonwalk.tolerance_for(dtype)``).
        dtype: the model's dtype name.
        nonfinite: names of gradients with non-finite values.
    """
    if nonfinite or not math.isfinite(self_check):
        return (f"Moonwalk produced non-finite values (self-check {self_check}, non-finite "
                f"gradients: {list(nonfinite)[:5]}); the inverse-forward sweep diverged. Use "
                "checkpoint_every='auto', a smaller block_size, a larger leaky-ReLU slope, "
                "well-conditioned weights (init='orthogonal') or float64.")
    if self_check > tolerance:
        return (f"Moonwalk self-check: reconstructed cotangents are off by {self_check:.2e} "
                f"relative, {self_check / tolerance:.1e}x the tolerance {tolerance:.0e} for "
                f"{dtype}; gradients may be inaccurate. Use checkpoint_every='auto' (or a "
                "smaller int), a smaller block_size, a larger leaky-ReLU slope or float64.")
    return None


def report_accuracy(method: Moonwalk, dtype: str, self_check: float, nonfinite: Sequence[str],
                    *, stacklevel: int = 2) -> None:
    """Warn (``MoonwalkAccuracyWarning``), or raise ``FloatingPointError`` when
    ``method.strict``, if the self-check or the gradients say the result is not trustworthy.

    ``stacklevel`` counts from the caller of this function (as ``warnings.warn`` does from its
    own caller).
    """
    msg = accuracy_message(self_check, method.tolerance_for(dtype), dtype, nonfinite)
    if msg is None:
        return
    if method.strict:
        raise FloatingPointError(msg)
    warnings.warn(msg, MoonwalkAccuracyWarning, stacklevel=stacklevel + 1)
