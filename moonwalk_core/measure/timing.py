"""Wall-clock timing: warm-up, repeats, methods interleaved round-robin in one process.

See ``docs/measurement.md``.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import sys
import time
from collections.abc import Callable, Mapping

import pandas as pd

__all__ = ["time_interleaved"]


def _torch_state() -> tuple[int | None, str, Callable[[], None]]:
    """Threads, device label and a synchronize call, from torch if the caller imported it.

    CUDA is synchronized when it is the harness's device (``adapter.current_device``) or
    torch has initialized it; the label is then the GPU's name.
    """
    from .adapter import current_device

    torch = sys.modules.get("torch")
    if torch is None:
        return None, "cpu", lambda: None
    on_cuda = current_device().startswith("cuda") or torch.cuda.is_initialized()
    if on_cuda and torch.cuda.is_available():
        return torch.get_num_threads(), torch.cuda.get_device_name(), torch.cuda.synchronize
    return torch.get_num_threads(), "cpu", lambda: None


def _block(result: object) -> None:
    """Wait for asynchronous JAX arrays in ``result`` so the time covers the computation.

    Looks into tuples, lists, dicts and dataclasses (e.g. a ``GradientResult``).
    """
    jax = sys.modules.get("jax")
    if jax is None:
        return
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = vars(result)
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(result) if isinstance(leaf, jax.Array)]
    jax.block_until_ready(leaves)


def time_interleaved(fns: Mapping[str, Callable[[], object]], *, repeats: int = 5,
                     warmup: int = 1, baseline: str | None = "Backprop",
                     device: str | None = None) -> pd.DataFrame:
    """Time several zero-argument calls, interleaved round-robin.

    Each round calls every function once, in the given order, so slow drifts of the machine
    (thermal, other processes) hit all methods alike. CUDA work is synchronized and JAX results
    are blocked on before the clock stops; garbage is collected between calls, outside the clock.

    Args:
        fns: method label -> a call that computes one gradient (its result is discarded).
        repeats: timed rounds; each round calls every function once.
        warmup: untimed rounds before the timed ones.
        baseline: label whose median the ratios divide by (None: no ratios).
        device: device label recorded in the table (None: "cpu", or the CUDA device name when
            torch has initialized CUDA).

    Returns:
        One row per method with columns ``method, median_s, min_s, max_s, repeats,
        ratio_to_baseline, threads, device``. ``threads`` is ``torch.get_num_threads()`` when
        torch is imported, else None.

    Raises:
        ValueError: if ``repeats < 1``, ``warmup < 0`` or ``baseline`` is not a key of ``fns``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"time_interleaved: need repeats >= 1 and warmup >= 0, "
                         f"got repeats={repeats}, warmup={warmup}")
    if baseline is not None and baseline not in fns:
        raise ValueError(f"time_interleaved: baseline={baseline!r} is not one of {list(fns)}; "
                         "pass baseline=None for no ratios")
    threads, auto_device, synchronize = _torch_state()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(warmup + repeats):
        for name, fn in fns.items():
            gc.collect()
            synchronize()
            start = time.perf_counter()
            _block(fn())
            synchronize()
            elapsed = time.perf_counter() - start
            if round_ >= warmup:
                times[name].append(elapsed)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    base = medians[baseline] if baseline is not None else None
    return pd.DataFrame([
        {"method": name, "median_s": medians[name], "min_s": min(ts), "max_s": max(ts),
         "repeats": repeats, "ratio_to_baseline": medians[name] / base if base else None,
         "threads": threads, "device": device or auto_device}
        for name, ts in times.items()
    ])
