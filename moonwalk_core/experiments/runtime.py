"""E5 runtime: time vs depth, and the block-size trade-off of block-wise reconstruction.

Part ``depth``: Backprop, Checkpointed and Moonwalk (sequential and block-wise) timed
interleaved in one process (:func:`moonwalk_core.measure.time_interleaved`), reported as
ratios to Backprop. Part ``block``: at one depth, Moonwalk with each block size against
Backprop: time ratio, stored bytes and gradient error against float64 Backprop. The summary's
ratios compare the fastest repeats (``min_s``: on a shared machine the median mostly measures
preemption); the medians are in the table and the summary (``*_median``). See
``docs/experiments.md`` and ``docs/measurement.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import arch, measure, methods, paths
from ..config import Profile
from ..measure.adapter import Backend, synthetic_batch
from ._common import adapter, attempt, ok_rows, prepare, sweep
from .exactness import gradient_error

__all__ = ["run", "summarize", "time_methods"]

KEY = ["part", "depth", "block_size"]


def time_methods(be: Backend, spec: arch.ArchSpec, candidates: Mapping[str, methods.Method], *,
                 batch: int, dtype: str, seed: int, repeats: int,
                 warmup: int) -> list[dict[str, Any]]:
    """Median times of one gradient per method, interleaved, with ratios to Backprop."""
    model = be.mw.build(spec, seed, dtype)
    x, y = synthetic_batch(be, spec, batch, dtype=dtype, seed=seed + 1)

    def call(method: methods.Method) -> Any:
        return lambda: be.mw.gradient(model, be.loss_fn, x, y, method=method).grads

    stored = {name: int(be.mw.gradient(model, be.loss_fn, x, y, method=m).stored_bytes["total"])
              for name, m in candidates.items()}
    table = measure.time_interleaved({name: call(m) for name, m in candidates.items()},
                                     repeats=repeats, warmup=warmup, baseline="Backprop")
    return [{**r, "stored_bytes": stored[r["method"]]} for r in table.to_dict("records")]


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities: time ratios to Backprop at the deepest net; the fastest block size."""
    ok = ok_rows(table)
    depth = ok[ok["part"] == "depth"]
    if depth.empty:
        return {}
    deepest = depth["depth"].max()
    at = depth[depth["depth"] == deepest].set_index("method")
    best = at["min_s"] / at.loc["Backprop", "min_s"]  # fastest repeats: robust to preemption
    median = at["ratio_to_baseline"]
    blocked = next((m for m in at.index if m.startswith("Moonwalk (block")), None)
    block = ok[ok["part"] == "block"]
    block_ratio = (block[block["method"] == "Moonwalk"].set_index("block_size")["min_s"]
                   / block[block["method"] == "Backprop"].set_index("block_size")["min_s"])
    fastest = block_ratio.idxmin() if not block_ratio.empty else None
    if fastest is not None:  # a missing block size is the sequential solve
        fastest = "sequential" if pd.isna(fastest) else int(fastest)
    return {"deepest": deepest, "moonwalk_time_ratio": best.get("Moonwalk"),
            "moonwalk_block_time_ratio": best.get(blocked) if blocked else None,
            "checkpointed_time_ratio": best.get("Checkpointed"),
            "moonwalk_time_ratio_median": median.get("Moonwalk"),
            "moonwalk_block_time_ratio_median": median.get(blocked) if blocked else None,
            "fastest_block_size": fastest,
            "fastest_block_time_ratio": None if fastest is None else float(block_ratio.min())}


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E5 on ``backend``; rows per (part, depth, block size) into ``out``."""
    out = Path(out) if out is not None else paths.result_file("runtime", backend)
    prepare(profile, backend)
    r = profile.runtime
    blocked = min(b for b in r.block_sizes if b is not None) if any(r.block_sizes) else None
    configs = [{"part": "depth", "depth": d, "block_size": blocked} for d in r.depths]
    configs += [{"part": "block", "depth": r.block_depth, "block_size": b}
                for b in r.block_sizes]

    def spec_of(depth: int) -> arch.ArchSpec:
        return arch.causal_conv_net(depth, channels=r.channels, length=r.length,
                                    patch=min(8, r.length))

    def rows(c: Mapping[str, Any]) -> list[dict[str, Any]]:
        def measure_one() -> dict[str, Any]:
            be = adapter(backend)
            spec, b = spec_of(c["depth"]), c["block_size"]
            if c["part"] == "depth":
                candidates = {"Backprop": methods.Backprop(),
                              "Checkpointed": methods.Checkpointed(),
                              "Moonwalk": methods.Moonwalk(),
                              f"Moonwalk (block {b})": methods.Moonwalk(block_size=b)}
            else:
                candidates = {"Backprop": methods.Backprop(),
                              "Moonwalk": methods.Moonwalk(block_size=b)}
            with warnings.catch_warnings():  # the error is measured below
                warnings.filterwarnings("ignore", message="Moonwalk")
                timed = time_methods(be, spec, candidates, batch=r.batch, dtype=r.dtype,
                                     seed=profile.seed, repeats=r.repeats, warmup=r.warmup)
            if c["part"] == "block":
                error = gradient_error(be, spec, dtype=r.dtype, init="orthogonal",
                                       seed=profile.seed, batch=r.batch,
                                       method=candidates["Moonwalk"])
                timed = [{**t, **({"error": error["error"]} if t["method"] == "Moonwalk"
                                  else {})} for t in timed]
            return {"timed": timed}

        result = attempt(measure_one)
        timed = result.pop("timed", [{}])
        return [{"backend": backend, **t, **result} for t in timed]

    return sweep(configs, rows, out, key=KEY, profile=profile, section="runtime",
                 backend=backend, summarize=summarize)
