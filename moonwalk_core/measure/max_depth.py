"""Max depth under a memory budget: exponential + binary search over depth.

See ``docs/measurement.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["max_depth_under_budget", "is_out_of_memory"]


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device running out of memory: ``MemoryError``, torch's
    ``OutOfMemoryError`` (CUDA) or XLA's ``RESOURCE_EXHAUSTED``."""
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or "RESOURCE_EXHAUSTED" in str(error)[:500])


def _free_cached_memory() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def max_depth_under_budget(peak_of_depth: Callable[[int], float], budget: float, *,
                           lo: int = 1, hi: int = 1024) -> tuple[int, list[tuple[int, float]]]:
    """The deepest depth in ``[lo, hi]`` whose peak fits ``budget`` (peak assumed monotone).

    Doubles the depth from ``lo`` until the peak exceeds the budget (or ``hi`` is reached), then
    bisects between the last depth that fitted and the first that did not: about
    ``2 log2(answer)`` measurements. A peak equal to the budget fits. A depth whose
    measurement runs out of device memory (:func:`is_out_of_memory`) does not fit: its peak
    is recorded as ``inf`` and the device's cached blocks are released.

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
        try:
            peak = float(peak_of_depth(depth))
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            _free_cached_memory()
            peak = math.inf
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
