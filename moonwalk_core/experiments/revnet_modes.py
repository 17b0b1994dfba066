"""E6 v1-revnet: the 2024 forward modes and the mixed mode on RevNets (``docs/experiments.md``).

Per depth, every method timed interleaved (ratios to Backprop), with stored bytes and the
gradient error against float64 Backprop. The paper's v1 claim is the speed-up of PureForward
over NaiveForward (27x at 6 layers, 110x at 60): linear against quadratic time in depth.
NaiveForward runs only up to ``naive_max_depth`` (its time grows quadratically). The summary's
speed-ups compare the fastest repeats (``min_s``; medians as ``speedup_median_depth_*``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import arch, methods, paths
from ..config import Profile
from ._common import adapter, attempt, ok_rows, prepare, sweep, worst
from .exactness import gradient_error
from .runtime import time_methods

__all__ = ["run", "summarize", "speedups"]

KEY = ["depth"]


def speedups(table: pd.DataFrame, statistic: str = "min_s") -> pd.DataFrame:
    """PureForward's speed-up over NaiveForward per depth (``naive_s / pure_s``).

    ``statistic`` is the time column compared: "min_s" (default; the fastest repeat, robust to
    preemption on a shared machine) or "median_s".
    """
    ok = table[table["status"] == "ok"]
    wide = ok.pivot_table(index="depth", columns="method", values=statistic)
    if not {"PureForward", "NaiveForward"} <= set(wide.columns):
        return pd.DataFrame(columns=["depth", "speedup"])
    speed = (wide["NaiveForward"] / wide["PureForward"]).dropna()
    return speed.rename("speedup").reset_index()


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities: PureForward's speed-up over NaiveForward per depth, and the mixed
    mode's and RevBackprop's time ratios to Backprop at the deepest net."""
    ok = ok_rows(table)
    if ok.empty:
        return {}
    summary: dict[str, Any] = {f"speedup_depth_{int(r.depth)}": r.speedup
                               for r in speedups(ok).itertuples()}
    summary.update({f"speedup_median_depth_{int(r.depth)}": r.speedup
                    for r in speedups(ok, "median_s").itertuples()})
    deepest = ok["depth"].max()
    at = ok[ok["depth"] == deepest].set_index("method")
    summary.update(deepest=deepest, moonwalk_time_ratio=at["ratio_to_baseline"].get("Moonwalk"),
                   revbackprop_time_ratio=at["ratio_to_baseline"].get("RevBackprop"),
                   max_error=worst(ok["error"]))
    return summary


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E6 on ``backend``; one row per (depth, method) into ``out``."""
    out = Path(out) if out is not None else paths.result_file("revnet_modes", backend)
    prepare(profile, backend)
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
                                     seed=profile.seed, repeats=r.repeats, warmup=r.warmup)
                errors = {name: gradient_error(be, spec, dtype=r.dtype, init="orthogonal",
                                               seed=profile.seed, batch=r.batch,
                                               method=m)["error"]
                          for name, m in candidates.items()}
            return {"timed": [{**t, "error": errors[t["method"]]} for t in timed]}

        result = attempt(measure_one)
        timed = result.pop("timed", [{}])
        return [{"backend": backend, **t, **result} for t in timed]

    configs = [{"depth": d} for d in r.depths]
    return sweep(configs, rows, out, key=KEY, profile=profile, section="revnet_modes",
                 backend=backend, summarize=summarize)
