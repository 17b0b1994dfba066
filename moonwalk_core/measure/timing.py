"""Wall-clock timing: warm-up, repeats, methods interleaved round-robin in one process."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd

__all__ = ["time_interleaved"]


def time_interleaved(fns: Mapping[str, Callable[[], object]], *, repeats: int = 5,
                     warmup: int = 1, baseline: str | None = "Backprop") -> pd.DataFrame:
    """Time several zero-argument calls, interleaved round-robin (SPEC §4 'Time').

    Args:
        fns: method label -> a call that computes one gradient (its result is discarded).
        repeats: timed rounds; each round calls every function once.
        warmup: untimed rounds before the timed ones.
        baseline: label whose median the ratios divide by (None: no ratios).

    Returns:
        One row per method with columns ``method, median_s, min_s, max_s, repeats,
        ratio_to_baseline, threads, device``.
    """
    raise NotImplementedError
