"""Benchmark: what numerical stability costs. ``checkpoint_every`` = None, every m, "auto".

On the 16- and 48-layer causal-conv nets with leaky-ReLU slope 0.1 in float32 (the case whose
plain Moonwalk gradients are wrong), per policy: stored bytes by category (the package's own
accounting), gradient error against float64 Backprop on the same weights, self-check, time as a
ratio to Backprop (interleaved in one process, median of repeats; "auto" reuses its plan while
the weights are unchanged) and the time a new "auto" plan costs (condition estimates + search).

    .venv/bin/python benchmarks/bench_stability.py [--depths 16 48 --channels 32 --length 256
        --batch 8 --slope 0.1 --every 2 4 --threads 2 --repeats 5
        --out benchmarks/out/stability.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, measure, methods
from moonwalk_core.measure.adapter import relative_error
from moonwalk_core.torch import _stability


def _one_depth(depth: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    spec = arch.causal_conv_net(depth, channels=args.channels, length=args.length,
                                negative_slope=args.slope)
    model = mw.build(spec, seed=0, dtype="float32")
    x = mw.random_input((args.batch, *spec.input_shape), dtype="float32", seed=1)
    y = torch.arange(args.batch) % spec.output_shape[0]
    model64 = mw.load_weights(mw.build(spec, seed=0, dtype="float64"), mw.export_weights(model))
    ref = mw.value_and_grad(model64, F.cross_entropy, x.double(), y, method=methods.Backprop())[1]
    candidates: dict[str, methods.Method] = {"Backprop": methods.Backprop(),
                                             "Moonwalk(none)": methods.Moonwalk()}
    candidates |= {f"Moonwalk(every {m})": methods.Moonwalk(checkpoint_every=m)
                   for m in args.every}
    candidates["Moonwalk(auto)"] = methods.Moonwalk(checkpoint_every="auto")
    rows: dict[str, dict[str, Any]] = {}
    with warnings.catch_warnings():  # the plain policies are expected to fail the self-check
        warnings.simplefilter("ignore", mw.MoonwalkAccuracyWarning)
        for name, method in candidates.items():
            result = mw.gradient(model, F.cross_entropy, x, y, method=method)
            error = relative_error(result.grads, ref)["error"]
            rows[name] = {"stored_bytes": result.stored_bytes,
                          "grad_rel_error_vs_float64_backprop": error,
                          "self_check": result.self_check,
                          "checkpoints": sum(p.checkpoint for p in result.plan),
                          "negative_units": sum(p.negative_units for p in result.plan)}
        timing = measure.time_interleaved(
            {name: (lambda m=m: mw.gradient(model, F.cross_entropy, x, y, method=m))
             for name, m in candidates.items()},
            repeats=args.repeats, warmup=1, baseline="Backprop")
    for rec in timing.to_dict("records"):
        rows[rec["method"]].update(median_s=rec["median_s"], time_ratio=rec["ratio_to_baseline"])
    # the timed "auto" gradients reuse their plan (same weights); a new plan costs this much
    start = time.perf_counter()
    for _ in range(args.repeats):
        _stability._CACHE.clear()
        _stability.auto_plan(model, candidates["Moonwalk(auto)"], x)
    rows["Moonwalk(auto)"]["plan_s"] = (time.perf_counter() - start) / args.repeats
    print(f"depth {depth} done", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--depths", type=int, nargs="+", default=[16, 48])
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--slope", type=float, default=0.1)
    p.add_argument("--every", type=int, nargs="+", default=[2, 4])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/stability.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {str(d): _one_depth(d, args) for d in args.depths}
    report = {"config": vars(args) | {"out": str(args.out)}, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "depths": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    kib = 2**10
    print("| depth | policy | stored KiB (x Backprop) | fragments / checkpoints KiB | stores "
          "(ckpt + neg) | grad error vs float64 | self-check | time s (x Backprop) |")
    print("|---|---|---|---|---|---|---|---|")
    for depth, rows in results.items():
        base = rows["Backprop"]["stored_bytes"]["total"]
        for name, r in rows.items():
            s = r["stored_bytes"]
            plan_note = f", plan {r['plan_s'] * 1e3:.0f} ms" if "plan_s" in r else ""
            check = f"{r['self_check']:.1e}" if r["self_check"] is not None else "-"
            print(f"| {depth} | {name} | {s['total'] / kib:.0f} ({s['total'] / base:.2f}x) "
                  f"| {s.get('fragments', 0) / kib:.0f} / {s.get('checkpoints', 0) / kib:.0f} "
                  f"| {r['checkpoints']} + {r['negative_units']} "
                  f"| {r['grad_rel_error_vs_float64_backprop']:.1e} | {check} "
                  f"| {r['median_s']:.3f} ({r['time_ratio']:.2f}x){plan_note} |")
    return report


if __name__ == "__main__":
    main()
