"""Benchmark: the 16-layer causal-conv net on the CPU, float32, every 1D method.

Reports, per method: stored bytes (the package's own accounting; saved-tensor bytes for autograd
methods), the peak resident memory one gradient adds (each method in a fresh process), the peak of
the torch CPU allocator during one gradient (profiler memory events), time as a ratio to Backprop
(interleaved in one process, median of repeats; with ``--processes N``, in N fresh processes, and
the table gives the median over processes with their range), and the float32 gradient error
against float64 Backprop.

Timing on the CPU depends on the C allocator's state: glibc hands Backprop's ~270 MB of saved
activations back to the OS after a gradient or keeps it, depending on the heap's history, and
page faults on fresh memory then cost Backprop 10-30% from one process to the next. Several
processes show that spread instead of one draw from it; ``--allocator steady`` times them with
glibc told to keep freed memory (``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``): no page
faults after warm-up, Backprop's best case.

    .venv/bin/python benchmarks/bench_torch_1d.py [--depth 16 --channels 64 --length 1024
        --batch 32 --threads 2 --repeats 5 --processes 1 --allocator default
        --out benchmarks/out/torch_1d.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, measure, methods
from moonwalk_core.measure.adapter import relative_error


def _setup(args: argparse.Namespace) -> tuple:
    torch.set_num_threads(args.threads)
    spec = arch.causal_conv_net(args.depth, channels=args.channels, length=args.length)
    candidates = {
        "Backprop": methods.Backprop(),
        "Checkpointed": methods.Checkpointed(),
        "Moonwalk(sequential)": methods.Moonwalk(),
        f"Moonwalk(block_size={args.block_size})": methods.Moonwalk(block_size=args.block_size),
        f"Moonwalk(block_size={args.block_size}, fft)": methods.Moonwalk(
            block_size=args.block_size, solver="fft"),
    }
    model = mw.build(spec, seed=0, dtype="float32")
    x = mw.random_input((args.batch, *spec.input_shape), dtype="float32", seed=1)
    y = torch.arange(args.batch) % spec.output_shape[0]
    return spec, candidates, model, x, y


def _time(args: argparse.Namespace, candidates: dict, model, x, y) -> dict[str, dict]:
    """Interleaved timing in this process: per method median/min/max seconds and ratio."""
    timing = measure.time_interleaved(
        {name: (lambda m=m: mw.gradient(model, F.cross_entropy, x, y, method=m))
         for name, m in candidates.items()},
        repeats=args.repeats, warmup=1, baseline="Backprop")
    return {rec["method"]: {"median_s": rec["median_s"], "min_s": rec["min_s"],
                            "max_s": rec["max_s"], "time_ratio": rec["ratio_to_baseline"]}
            for rec in timing.to_dict("records")}


STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),  # glibc's largest: heap, not mmap
                 "MALLOC_TRIM_THRESHOLD_": str(2**40)}  # never hand freed memory back


def _time_in_processes(args: argparse.Namespace, argv: list[str]) -> dict[str, dict]:
    """``_time`` in ``args.processes`` fresh processes; medians over them, with the range."""
    runs = []
    env = os.environ | (STEADY_MALLOC if args.allocator == "steady" else {})
    for i in range(args.processes):
        out = subprocess.run([sys.executable, __file__, *argv, "--timing-only"], check=True,
                             capture_output=True, text=True, env=env).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(f"timed in process {i + 1}/{args.processes}", file=sys.stderr)
    rows = {}
    for name in runs[0]:
        ratios = [r[name]["time_ratio"] for r in runs]
        rows[name] = {"median_s": statistics.median(r[name]["median_s"] for r in runs),
                      "min_s": min(r[name]["min_s"] for r in runs),
                      "max_s": max(r[name]["max_s"] for r in runs),
                      "time_ratio": statistics.median(ratios),
                      "time_ratio_range": [min(ratios), max(ratios)],
                      "time_ratio_per_process": ratios}
    return rows


def _range(row: dict) -> str:
    lo_hi = row.get("time_ratio_range")
    return "" if lo_hi is None else f", {lo_hi[0]:.2f}-{lo_hi[1]:.2f}"


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--depth", type=int, default=16)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--processes", type=int, default=1,
                   help="time in this many fresh processes (1: in this one)")
    p.add_argument("--allocator", choices=["default", "steady"], default="default",
                   help="steady: time in child processes whose glibc keeps freed memory")
    p.add_argument("--timing-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/torch_1d.json"))
    args = p.parse_args(argv)
    if args.processes < 1 or args.repeats < 1:
        p.error("--processes and --repeats must be at least 1")
    spec, candidates, model, x, y = _setup(args)
    if args.timing_only:  # a child of --processes: one JSON line on stdout
        print(json.dumps(_time(args, candidates, model, x, y)))
        return {}

    # the float64 reference runs on the float32 model's own weights, so the errors below are
    # arithmetic error only (float32 Backprop's own error is the floor for every method)
    model64 = mw.load_weights(mw.build(spec, seed=0, dtype="float64"), mw.export_weights(model))
    ref = mw.value_and_grad(model64, F.cross_entropy, x.double(), y, method=methods.Backprop())[1]
    ref32 = {k: v.double() for k, v in mw.value_and_grad(model, F.cross_entropy, x, y,
                                                         method=methods.Backprop())[1].items()}
    rows: dict[str, dict] = {}
    for name, method in candidates.items():
        result = mw.gradient(model, F.cross_entropy, x, y, method=method)
        rows[name] = {
            "stored_bytes": result.stored_bytes["total"],
            "stored_breakdown": result.stored_bytes,
            "grad_rel_error_vs_float64_backprop": relative_error(result.grads, ref)["error"],
            "grad_rel_error_vs_float32_backprop": relative_error(result.grads, ref32)["error"],
            "self_check": result.self_check,
        }
        print(f"accounted {name}", file=sys.stderr)
    timed = (_time(args, candidates, model, x, y)
             if args.processes == 1 and args.allocator == "default"
             else _time_in_processes(args, argv))
    for name, t in timed.items():
        rows[name].update(t)
    for name, method in candidates.items():
        rss = measure.peak_rss_fresh_process("torch", spec.to_dict(), method, batch=args.batch)
        alloc = measure.peak_memory("torch", spec, method, batch=args.batch)
        rows[name].update(peak_rss_added_bytes=rss["peak_rss_added_bytes"],
                          peak_rss_source=rss["source"], peak_alloc_bytes=alloc["peak_bytes"],
                          peak_alloc_source=alloc["source"])
        print(f"measured peak {name}", file=sys.stderr)
    base = rows["Backprop"]
    for row in rows.values():
        row["peak_rss_ratio_to_backprop"] = (row["peak_rss_added_bytes"]
                                             / base["peak_rss_added_bytes"])
        row["peak_alloc_ratio_to_backprop"] = row["peak_alloc_bytes"] / base["peak_alloc_bytes"]
        row["stored_ratio_to_backprop"] = row["stored_bytes"] / base["stored_bytes"]
    report = {"config": vars(args) | {"out": str(args.out)}, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "methods": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    mib = 2**20
    print("| method | stored MiB | peak RSS added MiB (fresh process) | allocator peak MiB | "
          "time s (ratio) | grad error vs float64 / vs float32 Backprop |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['stored_bytes'] / mib:.1f} ({r['stored_ratio_to_backprop']:.2f}x) "
              f"| {r['peak_rss_added_bytes'] / mib:.1f} ({r['peak_rss_ratio_to_backprop']:.2f}x) "
              f"| {r['peak_alloc_bytes'] / mib:.1f} ({r['peak_alloc_ratio_to_backprop']:.2f}x) "
              f"| {r['median_s']:.3f} ({r['time_ratio']:.2f}x{_range(r)}) "
              f"| {r['grad_rel_error_vs_float64_backprop']:.1e} / "
              f"{r['grad_rel_error_vs_float32_backprop']:.1e} |")
    return report


if __name__ == "__main__":
    main()
