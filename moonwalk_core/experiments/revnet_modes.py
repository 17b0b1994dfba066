"""E6 v1-revnet: the 2024 forward modes and the mixed mode on RevNets (``docs/experiments.md``).

Per depth, every method timed in interleaved rounds (``runtime.time_rounds``), with stored
bytes and the gradient error against float64 Backprop. The paper's v1 claim is the speed-up of
PureForward over NaiveForward (27x at 6 layers, 110x at 60): linear against quadratic time in
depth. The speed-up is the median over rounds of NaiveForward's time over PureForward's in the
same round (quartiles kept); each forward mode's depth exponent is fitted to all rounds
(log time against log depth, least squares, 95% interval). NaiveForward runs only up to
``naive_max_depth``. Each timed sample calls a method back to back until ``min_sample_s``
has passed (``runtime.time_rounds``); times are per call, and the summary keeps the shortest
sample (``shortest_sample_s``) so the report can flag samples too short to time.
At the deepest net, the peak memory of Backprop, RevBackprop and Moonwalk (torch profiler,
after a warm-up) places the RevNet methods on the memory/time plane.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import arch, measure, methods, paths
from ..config import Profile
from ._common import adapter, attempt, ok_rows, prepare, sweep, worst
from .exactness import gradient_error
from .runtime import steady_allocator, time_methods

__all__ = ["run", "summarize", "speedups", "depth_exponent"]

KEY = ["depth"]


def speedups(table: pd.DataFrame) -> pd.DataFrame:
    """PureForward's speed-up over NaiveForward per depth: the median over rounds of
    NaiveForward's time over PureForward's in the same round, with the quartiles
    (columns ``depth, speedup, speedup_q1, speedup_q3``)."""
    ok = table[(table["status"] == "ok") & (table["method"] == "NaiveForward")]
    if ok.empty or "ratio_q1" not in ok:
        return pd.DataFrame(columns=["depth", "speedup", "speedup_q1", "speedup_q3"])
    return (ok[["depth", "ratio_to_baseline", "ratio_q1", "ratio_q3"]]
            .rename(columns={"ratio_to_baseline": "speedup", "ratio_q1": "speedup_q1",
                             "ratio_q3": "speedup_q3"}).sort_values("depth")
            .reset_index(drop=True))


def depth_exponent(table: pd.DataFrame, method: str) -> tuple[float, float, float] | None:
    """Fitted exponent b of time ~ depth^b for ``method`` from every timed round (least
    squares on logs) and its 95% interval; None with fewer than three depths."""
    from scipy import stats

    ok = table[(table["status"] == "ok") & (table["method"] == method)]
    if ok["depth"].nunique() < 3 or "times_s" not in ok:
        return None
    depth = np.concatenate([[d] * len(str(t).split()) for d, t in zip(ok["depth"],
                                                                     ok["times_s"],
                                                                     strict=True)])
    times = np.concatenate([[float(v) for v in str(t).split()] for t in ok["times_s"]])
    fit = stats.linregress(np.log(depth), np.log(times))
    half = stats.t.ppf(0.975, len(times) - 2) * fit.stderr
    return float(fit.slope), float(fit.slope - half), float(fit.slope + half)


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities: PureForward's speed-up over NaiveForward per depth, and the mixed
    mode's and RevBackprop's time ratios to Backprop at the deepest net."""
    ok = ok_rows(table)
    if ok.empty:
        return {}
    summary: dict[str, Any] = {}
    for r in speedups(ok).itertuples():
        summary.update({f"speedup_depth_{int(r.depth)}": r.speedup,
                        f"speedup_q1_depth_{int(r.depth)}": r.speedup_q1,
                        f"speedup_q3_depth_{int(r.depth)}": r.speedup_q3})
    for method, key in (("PureForward", "pure"), ("NaiveForward", "naive")):
        fit = depth_exponent(ok, method)
        if fit is not None:
            summary.update({f"{key}_depth_exponent": fit[0], f"{key}_depth_exponent_lo": fit[1],
                            f"{key}_depth_exponent_hi": fit[2]})
    forward = ok[ok["method"].isin(["PureForward", "NaiveForward"])]
    deepest = ok["depth"].max()
    at = ok[ok["depth"] == deepest].set_index("method")
    backprop = at["median_s"].get("Backprop")
    summary.update(deepest=deepest, shortest_forward_mode_call_s=forward["min_s"].min())
    if "min_sample_s" in ok:  # every timed sample (all its calls): the clock's resolution
        summary.update(shortest_sample_s=ok["min_sample_s"].min(),
                       shortest_forward_mode_sample_s=forward["min_sample_s"].min(),
                       calls_per_sample_max=int(ok["calls_per_sample"].max()))
    summary.update(max_error=worst(ok["error"][ok["error_checked"].astype(str) == "True"]
                                   if "error_checked" in ok else ok["error"]))
    for name, key in (("Moonwalk", "moonwalk"), ("RevBackprop", "revbackprop")):
        if backprop and name in at.index:
            summary[f"{key}_time_ratio"] = at.loc[name, "median_s"] / backprop
    if "peak_bytes" in at and pd.notna(at["peak_bytes"].get("RevBackprop")):
        summary.update(revbackprop_peak_ratio=at.loc["Backprop", "peak_bytes"]
                       / at.loc["RevBackprop", "peak_bytes"],
                       moonwalk_peak_ratio=at.loc["Backprop", "peak_bytes"]
                       / at.loc["Moonwalk", "peak_bytes"])
    return summary


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E6 on ``backend``; one row per (depth, method) into ``out``."""
    out = Path(out) if out is not None else paths.result_file("revnet_modes", backend)
    prepare(profile, backend)
    steady = steady_allocator()
    r = profile.revnet_modes

    def rows(c: Mapping[str, Any]) -> list[dict[str, Any]]:
        def measure_one() -> dict[str, Any]:
            be = adapter(backend)
            # the head may not expand (PureForward has no fragments): classes <= channels
            spec = arch.revnet(c["depth"], channels=r.channels, size=r.size, hidden=r.hidden,
                               classes=min(10, r.channels))
            candidates: dict[str, methods.Method] = {
                "Backprop": methods.Backprop(), "RevBackprop": methods.RevBackprop(),
                "Moonwalk": methods.Moonwalk(), "PureForward": methods.PureForward()}
            if c["depth"] <= r.naive_max_depth:
                candidates["NaiveForward"] = methods.NaiveForward()
            with warnings.catch_warnings():  # the error is measured below
                warnings.filterwarnings("ignore", message="Moonwalk")
                timed = time_methods(be, spec, candidates, batch=r.batch, dtype=r.dtype,
                                     seed=profile.seed, repeats=r.repeats, warmup=r.warmup,
                                     baseline="PureForward", min_sample_s=r.min_sample_s)
                # NaiveForward's error at the smallest depth only: one more call of it at
                # the deepest net costs as much as all its timed rounds together
                checked = {name: m for name, m in candidates.items()
                           if name != "NaiveForward" or c["depth"] == min(r.depths)}
                errors = {name: gradient_error(be, spec, dtype=r.dtype, init="orthogonal",
                                               seed=profile.seed, batch=r.batch,
                                               method=m)["error"]
                          for name, m in checked.items()}
                peaks = {}
                if c["depth"] == max(r.depths):  # RevNets on the memory/time plane
                    for name in ("Backprop", "RevBackprop", "Moonwalk"):
                        peak = measure.peak_memory(backend, spec, candidates[name],
                                                   batch=r.batch, dtype=r.dtype,
                                                   seed=profile.seed)
                        peaks[name] = {"peak_bytes": peak["peak_bytes"],
                                       "peak_source": peak["source"]}
            return {"timed": [{**t, "error": errors.get(t["method"]),
                               "error_checked": t["method"] in errors,
                               **peaks.get(t["method"], {})}
                              for t in timed]}

        result = attempt(measure_one)
        timed = result.pop("timed", [{}])
        return [{"backend": backend, "steady_allocator": steady, **t, **result} for t in timed]

    configs = [{"depth": d} for d in r.depths]
    return sweep(configs, rows, out, key=KEY, profile=profile, section="revnet_modes",
                 backend=backend, summarize=summarize,
                 extra_identity={"steady_allocator": steady})
