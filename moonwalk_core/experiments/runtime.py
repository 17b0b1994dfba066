"""E5 runtime: time per gradient against the plain framework net, and the memory/time frontier.

All parts run on the fragmental (ReLU) 1D net, the paper's setting, and time every method in
interleaved rounds in one process with a steady allocator (:func:`steady_allocator`), after a
warm-up; a row keeps the median and the quartiles of the per-round times and of the per-round
ratios to the plain torch net under autograd (``baselines.PLAIN``), the reference of every
ratio. The package's Backprop is timed beside it.

* ``depth``: Plain autograd, Backprop, Checkpointed, Moonwalk (sequential and block-wise) vs
  depth. Moonwalk's time is also compared with its operation-count floor: one forward pass,
  one input-vjp pass, one recomputing forward pass, one vijp pass and one parameter-vjp pass
  (five passes) against plain Backprop's three (forward, input vjp, parameter vjp): 5/3.
* ``pareto``: at ``block_depth``, peak memory (torch profiler, after a warm-up) and median
  time of the plain net, the package's Backprop, ``torch.utils.checkpoint`` at every segment
  count and Moonwalk at every block size (``moonwalk_block``; with its gradient error against
  float64 Backprop: the block-size trade-off) and with ``checkpoint_every="auto"``: is
  Moonwalk below checkpointing's frontier?

See ``docs/experiments.md`` and ``docs/measurement.md``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import arch, baselines, measure, methods, paths
from .._claims import OP_COUNT_FLOOR
from ..config import Profile
from ..measure.adapter import Backend, synthetic_batch
from ._common import Unavailable, adapter, attempt, ok_rows, prepare, sweep
from .exactness import gradient_error

__all__ = ["run", "summarize", "time_rounds", "time_methods", "steady_allocator",
           "OP_COUNT_FLOOR", "frontier_summary"]

KEY = ["part", "depth", "block_size"]
ACTIVATION = "relu"  # the paper's (fragmental) setting
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def steady_allocator() -> bool:
    """Make glibc keep freed memory (no trimming, large blocks from the heap up to its 32 MiB
    mmap limit), so a gradient's buffers are reused from one call to the next instead of being
    mapped and zero-filled by the kernel anew: repeated calls then time the computation, not
    the page faults. Process-wide; returns False where glibc is not the allocator."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
                    and libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):
        return False


def _until(fn: Callable[[], object], min_sample_s: float, counts: list[int]
           ) -> Callable[[], object]:
    """One sample: ``fn`` called back to back until ``min_sample_s`` has passed (at least
    once); appends the number of calls to ``counts``."""
    def sample() -> object:
        start, calls = _clock(), 0
        while True:
            result = fn()
            calls += 1
            if _clock() - start >= min_sample_s:
                counts.append(calls)
                return result

    return sample


_clock = time.perf_counter


def time_rounds(fns: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int,
                baseline: str, min_sample_s: float = 0.0) -> list[dict[str, Any]]:
    """Per-method statistics of ``repeats`` interleaved rounds (each calls every function
    once) after ``warmup`` rounds: median, quartiles, fastest and slowest time, and the
    median and quartiles of the per-round ratio to ``baseline``'s time in the same round.

    With ``min_sample_s``, a method's timed sample calls it back to back until at least
    that long has passed (timeit's way: a sample is never shorter than the clock and the
    scheduler can resolve, however the machine's speed varies), after one untimed call (a
    first call is slow). Times are per call (a sample's time over its calls); a row keeps
    ``calls_per_sample`` (the fewest of its samples) and ``min_sample_s`` (its shortest
    sample, all calls), so a check can see that every sample was long enough."""
    counts: dict[str, list[int]] = {name: [] for name in fns}
    if min_sample_s > 0:
        measure.time_interleaved(fns, repeats=1, warmup=0, baseline=None)
        samples = {name: _until(fn, min_sample_s, counts[name]) for name, fn in fns.items()}
    else:
        samples = dict(fns)
    if warmup:
        measure.time_interleaved(samples, repeats=warmup, warmup=0, baseline=None)
    for c in counts.values():
        c.clear()
    rounds = pd.DataFrame([
        measure.time_interleaved(samples, repeats=1, warmup=0, baseline=None)
        .set_index("method")["median_s"] for _ in range(repeats)]).reset_index(drop=True)
    shortest = rounds.min()
    calls = pd.DataFrame({name: c if c else [1] * repeats for name, c in counts.items()})
    rounds = rounds / calls[rounds.columns]
    ratios = rounds.div(rounds[baseline], axis=0)
    out = []
    for name in fns:
        t, r = rounds[name], ratios[name]
        out.append({"method": name, "median_s": t.median(), "q1_s": t.quantile(0.25),
                    "q3_s": t.quantile(0.75), "min_s": t.min(), "max_s": t.max(),
                    "repeats": repeats, "calls_per_sample": int(calls[name].min()),
                    "min_sample_s": shortest[name], "ratio_to_baseline": r.median(),
                    "ratio_q1": r.quantile(0.25), "ratio_q3": r.quantile(0.75),
                    "times_s": " ".join(f"{v:.6g}" for v in t)})
    return out


def _candidate_call(be: Backend, model: Any, x: Any, y: Any, method: Any
                    ) -> Callable[[], object]:
    if isinstance(method, int | type(None)):  # a plain net: None, or checkpoint segments
        return baselines.torch_plain_gradient(model, be.loss_fn, x, y, segments=method)
    return lambda: be.mw.gradient(model, be.loss_fn, x, y, method=method).grads


def time_methods(be: Backend, spec: arch.ArchSpec, candidates: Mapping[str, Any], *,
                 batch: int, dtype: str, seed: int, repeats: int, warmup: int,
                 baseline: str = baselines.PLAIN, peaks: bool = False,
                 min_sample_s: float = 0.0) -> list[dict[str, Any]]:
    """Time every candidate on one model and batch (:func:`time_rounds`), with stored bytes
    and, with ``peaks``, the peak bytes of one gradient (torch profiler, after a warm-up).

    A candidate is a method object of the package, or a plain torch net: None (autograd) or
    an int (``checkpoint_sequential`` segments).
    """
    model = be.mw.build(spec, seed, dtype)
    x, y = synthetic_batch(be, spec, batch, dtype=dtype, seed=seed + 1)
    calls = {name: _candidate_call(be, model, x, y, m) for name, m in candidates.items()}
    extra: dict[str, dict[str, Any]] = {}
    for name, m in candidates.items():
        stored = (None if isinstance(m, int | type(None)) else
                  int(be.mw.gradient(model, be.loss_fn, x, y, method=m).stored_bytes["total"]))
        extra[name] = {"stored_bytes": stored}
        if peaks:
            extra[name].update(peak_bytes=baselines.torch_peak(calls[name]),
                               peak_source="torch profiler memory events (CPU allocator), "
                                           "one gradient after a warm-up")
    timed = time_rounds(calls, repeats=repeats, warmup=warmup, baseline=baseline,
                        min_sample_s=min_sample_s)
    return [{**r, **extra[r["method"]]} for r in timed]


def frontier_summary(table: pd.DataFrame) -> dict[str, Any]:
    """Is Moonwalk below checkpointing's frontier? For every Moonwalk point of the ``pareto``
    part: the least checkpointing peak (plain net included) no slower than it
    (:func:`baselines.frontier`) over its own peak; the best Moonwalk point's figure."""
    ok = ok_rows(table)
    part = ok[ok["part"] == "pareto"] if "part" in ok else ok
    if part.empty or "peak_bytes" not in part:
        return {}
    checkpoint = part[part["method"].str.startswith("checkpoint") | (part["method"]
                                                                    == baselines.PLAIN)]
    points = list(zip(checkpoint["median_s"], checkpoint["peak_bytes"], strict=True))
    mw = part[part["method"].str.startswith("Moonwalk")]
    if mw.empty or not points:
        return {}
    gains = {r.method: baselines.frontier(points, r.median_s) / r.peak_bytes
             for r in mw.itertuples()}
    best = max(gains, key=lambda k: gains[k])
    plain = part.set_index("method")
    return {"frontier_peak_ratio": gains[best], "frontier_best_method": best,
            "moonwalk_below_frontier": int(gains[best] > 1),
            "pareto_plain_peak_mib": plain.loc[baselines.PLAIN, "peak_bytes"] / 2**20
            if baselines.PLAIN in plain.index else None,
            "pareto_best_moonwalk_peak_mib": plain.loc[best, "peak_bytes"] / 2**20}


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Claim quantities at the deepest net: median time ratios to the plain net (with their
    quartiles), Moonwalk over its 5/3 floor, the fastest block size, the frontier."""
    ok = ok_rows(table)
    depth = ok[ok["part"] == "depth"]
    if depth.empty:
        return {}
    deepest = depth["depth"].max()
    at = depth[depth["depth"] == deepest].set_index("method")
    blocked = next((m for m in at.index if m.startswith("Moonwalk (block")), None)
    summary: dict[str, Any] = {"deepest": deepest}
    for key, name in [("moonwalk", "Moonwalk"), ("moonwalk_block", blocked),
                      ("backprop", "Backprop"), ("checkpointed", "Checkpointed")]:
        if name in at.index:
            summary[f"{key}_time_ratio"] = at.loc[name, "ratio_to_baseline"]
            for q in ("q1", "q3"):
                if f"ratio_{q}" in at:
                    summary[f"{key}_time_ratio_{q}"] = at.loc[name, f"ratio_{q}"]
    if blocked in at.index:
        summary["moonwalk_block_over_floor"] = (at.loc[blocked, "ratio_to_baseline"]
                                                / OP_COUNT_FLOOR)
    if baselines.PLAIN in at.index:
        summary["plain_median_s"] = at.loc[baselines.PLAIN, "median_s"]
    if "moonwalk_block" in ok:
        blocks = ok[(ok["part"] == "pareto") & ok["moonwalk_block"].notna()]
        mw = blocks.set_index("moonwalk_block")["ratio_to_baseline"]
        if not mw.empty:
            fastest = mw.idxmin()
            summary.update(fastest_block_size=fastest if fastest == "sequential"
                           else int(float(fastest)),
                           fastest_block_time_ratio=float(mw.min()))
    summary.update(frontier_summary(table))
    return summary


def _block_label(block_size: int | None) -> str:
    return "Moonwalk (sequential)" if block_size is None else f"Moonwalk (block {block_size})"


def run(profile: Profile, backend: str = "torch", out: str | Path | None = None
        ) -> pd.DataFrame:
    """Run E5 on ``backend``; rows per (part, depth, block size, method) into ``out``."""
    out = Path(out) if out is not None else paths.result_file("runtime", backend)
    prepare(profile, backend)
    steady = steady_allocator()
    r = profile.runtime
    blocked = min(b for b in r.block_sizes if b is not None) if any(r.block_sizes) else None
    configs = [{"part": "depth", "depth": d, "block_size": blocked} for d in r.depths]
    configs += [{"part": "pareto", "depth": r.block_depth, "block_size": None}]

    def spec_of(depth: int) -> arch.ArchSpec:
        return arch.causal_conv_net(depth, channels=r.channels, length=r.length,
                                    patch=min(8, r.length), activation=ACTIVATION)

    def candidates_of(part: str, depth: int, b: int | None) -> dict[str, Any]:
        plain: dict[str, Any] = {baselines.PLAIN: None, "Backprop": methods.Backprop()}
        if part == "depth":
            return {**plain, "Checkpointed": methods.Checkpointed(),
                    "Moonwalk": methods.Moonwalk(),
                    f"Moonwalk (block {b})": methods.Moonwalk(block_size=b)}
        segments = {baselines.checkpoint_label(s): s for s in baselines.segment_counts(depth)}
        moonwalk = {_block_label(s): methods.Moonwalk(block_size=s) for s in r.block_sizes}
        auto = methods.Moonwalk(block_size=blocked, checkpoint_every="auto")
        return {**plain, **segments, **moonwalk, f"Moonwalk (block {blocked}, auto)": auto}

    def rows(c: Mapping[str, Any]) -> list[dict[str, Any]]:
        def measure_one() -> dict[str, Any]:
            be = adapter(backend)
            if backend != "torch":
                raise Unavailable("E5 times plain torch modules; run it with torch")
            spec, b = spec_of(c["depth"]), c["block_size"]
            candidates = candidates_of(c["part"], c["depth"], b)
            with warnings.catch_warnings():  # the error is measured below
                warnings.filterwarnings("ignore", message="Moonwalk")
                timed = time_methods(be, spec, candidates, batch=r.batch, dtype=r.dtype,
                                     seed=profile.seed, repeats=r.repeats, warmup=r.warmup,
                                     peaks=c["part"] == "pareto")
            if c["part"] == "pareto":  # the block-size trade-off: error per block size
                blocks = {_block_label(s): s for s in r.block_sizes}
                errors = {label: gradient_error(be, spec, dtype=r.dtype, init="orthogonal",
                                                seed=profile.seed, batch=r.batch,
                                                method=methods.Moonwalk(block_size=s))["error"]
                          for label, s in blocks.items()}
                timed = [{**t, **({"moonwalk_block": "sequential" if blocks[t["method"]] is None
                                   else str(blocks[t["method"]]),
                                   "error": errors[t["method"]]}
                                  if t["method"] in blocks else {})} for t in timed]
            return {"timed": timed}

        result = attempt(measure_one)
        timed = result.pop("timed", [{}])
        return [{"backend": backend, "activation": ACTIVATION, "steady_allocator": steady,
                 **t, **result} for t in timed]

    return sweep(configs, rows, out, key=KEY, profile=profile, section="runtime",
                 backend=backend, summarize=summarize,
                 extra_identity={"activation": ACTIVATION, "steady_allocator": steady})
