"""Device check: exactness, peak memory, time and max depth on one CUDA GPU, < 8 min.

For each conv family (1D causal conv; 2D masked conv):

1. exactness on the device: Moonwalk vs Backprop gradients, float32 and float64, both against
   float64 Backprop on the same weights, with Moonwalk's self-check;
2. calibration: the batch at which Backprop's peak at ``--target-depth`` layers is about
   ``--budget-gb`` (peak assumed affine in depth and linear in batch, from two small runs);
3. peak memory (CUDA peak allocated, plus the model and batch) and interleaved time ratios to
   Backprop for every method at that depth;
4. launches per warm gradient of every method at that depth and batch: work-launching ATen ops
   and host syncs (the package's counter, as ``bench_launches.py`` counts them on the CPU) and,
   on CUDA, the device activities (kernels, copies, fills) the torch profiler records;
5. the max depth under the budget per method (exponential + binary search over depth).

The JSON (``--out``) is rewritten after every section and after every method of a section, so
a timeout keeps what finished; a method or section that fails records its error (traceback in
the JSON) and the rest still run: one method's crash loses no other figure. ``--smallest``
runs everything on the CPU with tiny sizes (allocator source: torch profiler memory events).

    .venv/bin/python benchmarks/gpu_check.py --out benchmarks/out/gpu_check.json
    .venv/bin/python benchmarks/gpu_check.py --smallest --out benchmarks/out/gpu_check_cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, measure, methods
from moonwalk_core.arch import ArchSpec
from moonwalk_core.measure.adapter import relative_error
from moonwalk_core.torch._launches import count_warm

GIB = 2**30
MIB = 2**20


def _families(args: argparse.Namespace) -> dict[str, Callable[[int], ArchSpec] | str]:
    """Spec factories by family; a string instead says why the family is skipped."""
    return {
        "conv1d": lambda d: arch.causal_conv_net(d, channels=args.channels_1d,
                                                 length=args.length, kernel_size=3),
        "conv2d": lambda d: arch.conv2d_net(d, channels=args.channels_2d, size=args.size,
                                            kernel_size=3),
    }


def _methods(args: argparse.Namespace, *, with_checkpoints: bool = False) -> dict[str, Any]:
    """The methods compared; ``with_checkpoints`` adds Moonwalk with cotangent checkpoints
    (``--checkpoint-every``: "auto" or every m layers), the variant whose float32 gradients stay
    accurate at large depth."""
    out: dict[str, Any] = {
        "Backprop": methods.Backprop(), "Checkpointed": methods.Checkpointed(),
        f"Moonwalk(block_size={args.block_size})": methods.Moonwalk(block_size=args.block_size)}
    if with_checkpoints:
        every: Any = args.checkpoint_every
        out[f"Moonwalk(block_size={args.block_size}, checkpoint_every={every})"] = (
            methods.Moonwalk(block_size=args.block_size, checkpoint_every=every))
    return out


def exactness(make: Callable[[int], ArchSpec], args: argparse.Namespace) -> dict[str, Any]:
    """Moonwalk and Backprop in float32/float64 against float64 Backprop, on the device."""
    spec = make(args.exact_depth)
    model64 = mw.build(spec, seed=0, dtype="float64", device=args.device)
    x = mw.random_input((args.exact_batch, *spec.input_shape), dtype="float64", seed=1,
                        device=args.device)
    y = (torch.arange(args.exact_batch) % spec.output_shape[0]).to(args.device)
    ref = mw.gradient(model64, F.cross_entropy, x, y, method=methods.Backprop()).grads
    out: dict[str, Any] = {"depth": args.exact_depth, "batch": args.exact_batch}
    for dtype in ("float32", "float64"):
        model = mw.load_weights(mw.build(spec, seed=0, dtype=dtype, device=args.device),
                                mw.export_weights(model64))
        xd = x.to(getattr(torch, dtype))
        for name, method in (("Backprop", methods.Backprop()),
                             ("Moonwalk", methods.Moonwalk(block_size=args.block_size))):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = mw.gradient(model, F.cross_entropy, xd, y, method=method)
            out[f"{name}_{dtype}"] = {
                "rel_error_vs_float64_backprop": relative_error(result.grads, ref)["error"],
                "self_check": result.self_check,
                "warnings": [str(w.message)[:200] for w in caught]}
    return out


class OutOfTime(Exception):
    """The check's time limit passed during a search."""


def total_peak(spec: ArchSpec, method: Any, batch: int, args: argparse.Namespace) -> dict:
    """Peak of one gradient including the model and batch; inf when the device runs out.

    Moonwalk's accuracy warnings are recorded (``warnings``), not printed.
    """
    if time.perf_counter() > args.deadline:
        raise OutOfTime
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = measure.peak_memory("torch", spec, method, batch=batch, device=args.device)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {"total_peak_bytes": math.inf, "source": "out of memory"}
    return {**m, "total_peak_bytes": m["peak_bytes"] + m["model_and_batch_bytes"],
            "warnings": [str(w.message)[:120] for w in caught]}


def calibrate(make: Callable[[int], ArchSpec], args: argparse.Namespace) -> dict[str, Any]:
    """The batch at which Backprop's peak at ``target_depth`` is about the budget."""
    b0, (d1, d2) = args.calibration_batch, (2, 4)
    p1, p2 = (total_peak(make(d), methods.Backprop(), b0, args)["total_peak_bytes"]
              for d in (d1, d2))
    per_layer = (p2 - p1) / (d2 - d1)
    at_target = p1 + per_layer * (args.target_depth - d1)
    batch = max(1, int(b0 * args.budget_bytes / at_target))
    return {"calibration_batch": b0, "peaks": {d1: p1, d2: p2}, "batch": batch,
            "predicted_backprop_peak_at_target": at_target * batch / b0}


def _model_and_batch(spec: ArchSpec, batch: int, args: argparse.Namespace) -> tuple:
    """The float32 model (seed 0) and a synthetic batch (seed 1) on the device."""
    model = mw.build(spec, seed=0, dtype="float32", device=args.device)
    x = mw.random_input((batch, *spec.input_shape), dtype="float32", seed=1, device=args.device)
    y = (torch.arange(batch) % spec.output_shape[0]).to(args.device)
    return model, x, y


def at_depth(make: Callable[[int], ArchSpec], batch: int, args: argparse.Namespace) -> dict:
    """Peak and interleaved time of every method at ``target_depth``."""
    spec = make(args.target_depth)
    cands = _methods(args)
    peaks: dict[str, dict[str, Any]] = {}
    for name, m in cands.items():
        try:
            peaks[name] = total_peak(spec, m, batch, args)
        except OutOfTime:
            raise
        except Exception:  # record and go on
            peaks[name] = {"total_peak_bytes": math.nan, "source": "failed",
                           "error": traceback.format_exc(limit=3)}
        args.save()
    model, x, y = _model_and_batch(spec, batch, args)
    timed = {name: m for name, m in cands.items() if "error" not in peaks[name]}
    base = peaks["Backprop"]["total_peak_bytes"]
    rows: dict[str, Any] = {name: {**p, "peak_ratio_to_backprop": p["total_peak_bytes"] / base}
                            for name, p in peaks.items()}
    try:
        with warnings.catch_warnings():  # accuracy: the peak and exactness sections report it
            warnings.simplefilter("ignore", mw.MoonwalkAccuracyWarning)
            timing = measure.time_interleaved(
                {name: (lambda m=m: mw.gradient(model, F.cross_entropy, x, y, method=m))
                 for name, m in timed.items()}, repeats=args.repeats, warmup=1,
                baseline="Backprop" if "Backprop" in timed else None)
    except Exception:  # the peaks stay
        return {"depth": args.target_depth, "batch": batch, "methods": rows,
                "timing_error": traceback.format_exc(limit=3)}
    for rec in timing.to_dict("records"):
        rows[rec["method"]].update({k: rec[k] for k in ("median_s", "min_s", "max_s",
                                                        "ratio_to_baseline", "threads")})
    return {"depth": args.target_depth, "batch": batch, "methods": rows}


def launches(make: Callable[[int], ArchSpec], batch: int, args: argparse.Namespace) -> dict:
    """ATen launches and host syncs per warm gradient of every method at ``target_depth``
    (:class:`~moonwalk_core.torch._launches.LaunchCounter`) and, on CUDA, the device activities
    the torch profiler records for one gradient; each method on its own (a failure is kept)."""
    spec = make(args.target_depth)
    model, x, y = _model_and_batch(spec, batch, args)
    on_cuda = str(args.device).startswith("cuda")
    rows: dict[str, Any] = {}
    for name, m in _methods(args).items():
        if time.perf_counter() > args.deadline:
            raise OutOfTime
        try:
            with warnings.catch_warnings():  # accuracy: the exactness section reports it
                warnings.simplefilter("ignore", mw.MoonwalkAccuracyWarning)
                counter = count_warm(
                    lambda m=m: mw.gradient(model, F.cross_entropy, x, y, method=m))
                row: dict[str, Any] = {"aten_launches": counter.launches,
                                       "host_syncs": counter.syncs}
                if on_cuda:
                    torch.cuda.synchronize()
                    with torch.profiler.profile(
                            activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                        mw.gradient(model, F.cross_entropy, x, y, method=m)
                        torch.cuda.synchronize()
                    row["cuda_activities"] = sum(
                        1 for e in prof.events()
                        if e.device_type == torch.autograd.DeviceType.CUDA)
        except OutOfTime:
            raise
        except Exception:  # record and go on
            row = {"error": traceback.format_exc(limit=3)}
        rows[name] = row
        args.save()
    base = rows.get("Backprop", {})
    for row in rows.values():
        for key in ("aten_launches", "cuda_activities"):
            if key in row and base.get(key):
                row[f"{key}_ratio_to_backprop"] = row[key] / base[key]
    return {"depth": args.target_depth, "batch": batch, "methods": rows}


def max_depths(make: Callable[[int], ArchSpec], batch: int, args: argparse.Namespace,
               out: dict[str, Any] | None = None) -> dict:
    """Deepest network of the family whose total peak fits the budget, per method, into
    ``out`` (saved after every method; a method that fails records its traceback).

    Each evaluation also records Moonwalk's self-check: a depth that fits the budget but whose
    self-check is large is not a usable depth in that dtype (see ``self_check_at_max``).
    """
    out = {} if out is None else out
    for name, method in _methods(args, with_checkpoints=True).items():
        if name == "Checkpointed" and not args.depth_checkpointed:
            continue
        checks: dict[int, Any] = {}

        def peak_of_depth(d: int, m: Any = method, checks: dict = checks) -> float:
            r = total_peak(make(d), m, batch, args)
            checks[d] = r.get("self_check")
            print(f"    depth {d}: {r['total_peak_bytes'] / MIB:.1f} MiB", file=sys.stderr)
            return r["total_peak_bytes"]

        try:
            depth, evals = measure.max_depth_under_budget(peak_of_depth, args.budget_bytes,
                                                          lo=1, hi=args.max_depth)
        except OutOfTime:
            out[name] = {"max_depth": None, "evaluations": sorted(checks),
                         "note": "stopped: over the time limit"}
            args.save()
            continue
        except Exception:  # record and go on: the other methods' searches stay
            out[name] = {"max_depth": None, "evaluations": sorted(checks),
                         "error": traceback.format_exc(limit=3)}
            print(f"  max depth {name}: FAILED", file=sys.stderr)
            args.save()
            continue
        out[name] = {"max_depth": depth, "capped": depth == args.max_depth,
                     "self_check_at_max": checks.get(depth),
                     "evaluations": [(d, p, checks.get(d)) for d, p in evals]}
        print(f"  max depth {name}: {depth}", file=sys.stderr)
        args.save()
    bp = out.get("Backprop", {}).get("max_depth")
    for row in out.values():
        row["ratio_to_backprop"] = (row["max_depth"] / bp
                                    if bp and row["max_depth"] is not None else None)
    return out


def _environment(args: argparse.Namespace) -> dict[str, Any]:
    env = {"torch": torch.__version__, "python": platform.python_version(),
           "threads": torch.get_num_threads(), "device": args.device}
    if args.device.startswith("cuda"):
        env |= {"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda,
                "gpu_memory_bytes": torch.cuda.get_device_properties(0).total_memory}
    return env


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/gpu_check.json"))
    p.add_argument("--smallest", action="store_true", help="CPU, tiny sizes (no GPU needed)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--families", default="conv1d,conv2d", help="comma-separated subset")
    p.add_argument("--budget-gb", type=float, default=10.0)
    p.add_argument("--target-depth", type=int, default=10, help="Backprop's depth at the budget")
    p.add_argument("--max-depth", type=int, default=256)
    p.add_argument("--channels-1d", type=int, default=64)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--channels-2d", type=int, default=32)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--calibration-batch", type=int, default=64)
    p.add_argument("--exact-depth", type=int, default=8)
    p.add_argument("--exact-batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--checkpoint-every", type=lambda v: v if v == "auto" else int(v),
                   default="auto",
                   help="cotangent checkpoints of the accurate variant: 'auto' or every m layers")
    p.add_argument("--depth-checkpointed", action="store_true",
                   help="also search Checkpointed's max depth (slower)")
    p.add_argument("--time-limit-s", type=float, default=450.0,
                   help="skip the sections that would start after this")
    if p.parse_known_args(argv)[0].smallest:  # tiny CPU defaults; explicit flags still win
        p.set_defaults(device="cpu", budget_gb=24 / 1024, channels_1d=8, length=128,
                       channels_2d=4, size=8, block_size=32, calibration_batch=4, max_depth=64,
                       exact_depth=4, exact_batch=4, repeats=2, time_limit_s=300.0)
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("CUDA is not available; use --smallest for the CPU run")
    args.budget_bytes = args.budget_gb * GIB
    return args


def _summary(report: dict[str, Any]) -> None:
    print(f"device: {report['environment']}; budget {report['budget_bytes'] / GIB:.3g} GiB")
    for fam, r in report["families"].items():
        if isinstance(r, str):
            print(f"[{fam}] {r}")
            continue
        print(f"[{fam}]")
        for key, v in (r.get("exactness") or {}).items():
            if isinstance(v, dict):
                print(f"  exact {key}: rel error {v['rel_error_vs_float64_backprop']:.1e}, "
                      f"self-check {v['self_check']}")
        for name, v in (r.get("at_depth") or {}).get("methods", {}).items():
            if v.get("error") or "median_s" not in v:
                why = v.get("error") or r["at_depth"].get("timing_error") or "not timed"
                print(f"  depth {r['at_depth']['depth']} {name}: FAILED "
                      f"{why.strip().splitlines()[-1]}")
                continue
            print(f"  depth {r['at_depth']['depth']} batch {r['at_depth']['batch']} {name}: "
                  f"peak {v['total_peak_bytes'] / GIB:.3f} GiB "
                  f"({v['peak_ratio_to_backprop']:.2f}x), time {v['median_s']:.3f} s "
                  f"({v['ratio_to_baseline']:.2f}x)  [{v['source']}]")
        counted = r.get("launches") if isinstance(r.get("launches"), dict) else {}
        for name, v in counted.get("methods", {}).items():
            if v.get("error"):
                print(f"  launches {name}: FAILED {v['error'].strip().splitlines()[-1]}")
                continue
            cuda = (f", CUDA activities {v['cuda_activities']}"
                    f" ({v.get('cuda_activities_ratio_to_backprop', math.nan):.2f}x)"
                    if "cuda_activities" in v else "")
            print(f"  launches {name}: ATen {v['aten_launches']} "
                  f"({v.get('aten_launches_ratio_to_backprop', math.nan):.2f}x), "
                  f"syncs {v['host_syncs']}{cuda}")
        for name, v in (r.get("max_depth") or {}).items():
            if v.get("error"):
                print(f"  max depth at budget {name}: FAILED "
                      f"{v['error'].strip().splitlines()[-1]}")
                continue
            cap = " (search cap)" if v.get("capped") else ""
            print(f"  max depth at budget {name}: {v['max_depth']}{cap}, "
                  f"self-check there {v.get('self_check_at_max')}")
        for section, err in r.get("errors", {}).items():
            print(f"  {section} FAILED: {err.splitlines()[-1]}")


def _run_section(section: str, make: Callable[[int], ArchSpec], r: dict[str, Any],
                 args: argparse.Namespace) -> Any:
    if section == "exactness":
        return exactness(make, args)
    if section == "calibration":
        return calibrate(make, args)
    batch = r["calibration"]["batch"]
    if section == "at_depth":
        return at_depth(make, batch, args)
    if section == "launches":
        return launches(make, batch, args)
    r[section] = {}  # filled (and saved) method by method
    return max_depths(make, batch, args, r[section])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    start = time.perf_counter()
    args.deadline = start + args.time_limit_s
    report: dict[str, Any] = {"environment": _environment(args), "budget_bytes": args.budget_bytes,
                              "config": {k: str(v) for k, v in vars(args).items()},
                              "families": {}}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        report["elapsed_s"] = time.perf_counter() - start
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2, default=str))
        tmp.replace(args.out)  # a kill mid-write keeps the previous file

    args.save = save
    # core figures of every family first, then the (longer) depth searches
    fams = {k: v for k, v in _families(args).items() if k in args.families.split(",")}
    for fam, make in fams.items():
        report["families"][fam] = make if isinstance(make, str) else {"errors": {}}
    for section in ("exactness", "calibration", "at_depth", "launches", "max_depth"):
        for fam, make in fams.items():
            r = report["families"][fam]
            if isinstance(make, str):
                continue
            if time.perf_counter() > args.deadline:
                r[section] = f"skipped: over the time limit of {args.time_limit_s:.0f} s"
                continue
            print(f"[{fam}] {section} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
            try:
                r[section] = _run_section(section, make, r, args)
            except Exception:  # record and go on: one failure must not lose the other figures
                r["errors"][section] = traceback.format_exc(limit=3)
            save()
    save()
    _summary(report)
    return report


if __name__ == "__main__":
    main()
