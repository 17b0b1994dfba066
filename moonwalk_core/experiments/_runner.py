"""Resumable sweeps: one CSV row per completed configuration, done rows skipped on rerun."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

__all__ = ["run_sweep"]


def run_sweep(configs: Sequence[Mapping], fn: Callable[[Mapping], Mapping | list[Mapping]],
              out: str | Path, *, key: Sequence[str], desc: str = "") -> pd.DataFrame:
    """Run ``fn`` on every config not yet in ``out``; append its row(s) as each one finishes.

    Args:
        configs: the sweep, one mapping per configuration.
        fn: computes the result row (or rows) of one configuration.
        out: the CSV file; created if missing, appended to (and flushed) after each config.
        key: config fields that identify a configuration; a config whose key values already
            appear in ``out`` is skipped.
        desc: label of the tqdm progress bar.

    Returns:
        The whole table in ``out`` after the sweep.
    """
    raise NotImplementedError
