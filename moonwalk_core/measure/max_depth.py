"""Max depth under a memory budget: exponential + binary search over depth (SPEC §4)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["max_depth_under_budget"]


def max_depth_under_budget(peak_of_depth: Callable[[int], float], budget: float, *,
                           lo: int = 1, hi: int = 1024) -> tuple[int, list[tuple[int, float]]]:
    """The deepest depth in ``[lo, hi]`` whose peak fits ``budget`` (peak assumed monotone).

    Args:
        peak_of_depth: measures the peak (bytes) of one gradient at a depth.
        budget: the memory budget, same unit as ``peak_of_depth``.
        lo, hi: the depth range searched.

    Returns:
        ``(depth, evaluations)``: the deepest fitting depth (0 if ``lo`` does not fit) and the
        ``(depth, peak)`` pairs measured, in order.
    """
    raise NotImplementedError
