"""Max depth under a memory budget: exponential + binary search over depth.

See ``docs/measurement.md``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["max_depth_under_budget"]


def max_depth_under_budget(peak_of_depth: Callable[[int], float], budget: float, *,
                           lo: int = 1, hi: int = 1024) -> tuple[int, list[tuple[int, float]]]:
    """The deepest depth in ``[lo, hi]`` whose peak fits ``budget`` (peak assumed monotone).

    Doubles the depth from ``lo`` until the peak exceeds the budget (or ``hi`` is reached), then
    bisects between the last depth that fitted and the first that did not: about
    ``2 log2(answer)`` measurements. A peak equal to the budget fits.

    Args:
        peak_of_depth: measures the peak (bytes) of one gradient at a depth.
        budget: the memory budget, same unit as ``peak_of_depth``.
        lo, hi: the depth range searched.

    Returns:
        ``(depth, evaluations)``: the deepest fitting depth (0 if ``lo`` does not fit) and the
        ``(depth, peak)`` pairs measured, in order.

    Raises:
        ValueError: if ``lo < 1`` or ``hi < lo``.
    """
    if lo < 1 or hi < lo:
        raise ValueError(f"max_depth_under_budget: need 1 <= lo <= hi, got lo={lo}, hi={hi}")
    evaluations: list[tuple[int, float]] = []

    def fits(depth: int) -> bool:
        peak = float(peak_of_depth(depth))
        evaluations.append((depth, peak))
        return peak <= budget

    if not fits(lo):
        return 0, evaluations
    good, bad = lo, hi + 1  # invariant: good fits, bad does not (hi + 1 stands for "beyond")
    probe = lo
    while True:  # exponential phase: the first depth that does not fit, or hi
        probe = min(2 * probe, hi)
        if probe <= good:
            break
        if fits(probe):
            good = probe
        else:
            bad = probe
            break
    while bad - good > 1:  # binary phase
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good, evaluations
