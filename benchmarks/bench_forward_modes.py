"""Benchmark: the 2024 paper's forward-mode comparison on RevNets of 6 and 60 coupling layers.

Part 1, forward modes: time of PureForward (h_0 by one JVP per input dimension, then the Phase
III sweep) vs NaiveForward (one JVP per parameter) on a small image batch; the paper reports
PureForward ("Moonwalk") 27x faster at 6 layers and 110x at 60. Part 2: Moonwalk (mixed mode)
vs Backprop vs RevBackprop (and PureForward): time ratios to Backprop, stored bytes (the
package's own accounting; autograd's saved tensors for Backprop), float32 gradient error against
float64 Backprop on the same weights, and RevBackprop's reconstruction drift of x_0.

Times are medians of interleaved repeats in one process (moonwalk_core.measure); the depth
scaling exponent is log(t_deep / t_shallow) / log(deep / shallow): 1 is linear, 2 quadratic.

    .venv/bin/python benchmarks/bench_forward_modes.py [--depths 6 60 --channels 4 --size 8
        --hidden 4 --batch 2 --threads 2 --repeats 3 --naive-repeats 1 --naive-warmup 1
        --out benchmarks/out/forward_modes.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, measure, methods
from moonwalk_core.measure.adapter import relative_error


def _setup(depth: int, args: argparse.Namespace, dtype: str):
    spec = arch.revnet(depth, channels=args.channels, size=args.size, hidden=args.hidden,
                       classes=args.classes)
    model = mw.build(spec, seed=0, dtype=dtype)
    x = mw.random_input((args.batch, *spec.input_shape), dtype=dtype, seed=1)
    y = torch.arange(args.batch) % spec.output_shape[0]
    return spec, model, x, y


def _timer(model, x, y, method):
    return lambda: mw.gradient(model, F.cross_entropy, x, y, method=method)


def forward_modes(args: argparse.Namespace) -> list[dict]:
    """Part 1: PureForward vs NaiveForward time at each depth (float32)."""
    rows = []
    for depth in args.depths:
        _, model, x, y = _setup(depth, args, "float32")
        pure = measure.time_interleaved(
            {"PureForward": _timer(model, x, y, methods.PureForward(args.chunk_size))},
            repeats=args.repeats, baseline=None)
        naive = measure.time_interleaved(
            {"NaiveForward": _timer(model, x, y, methods.NaiveForward(
                args.chunk_size, max_parameters=10**7))},
            repeats=args.naive_repeats, warmup=args.naive_warmup, baseline=None)
        t_pure, t_naive = float(pure.median_s[0]), float(naive.median_s[0])
        rows.append({"depth": depth, "parameters": sum(p.numel() for p in model.parameters()),
                     "input_dims": math.prod(x.shape[1:]), "pure_forward_s": t_pure,
                     "naive_forward_s": t_naive, "speedup": t_naive / t_pure})
        print(f"depth {depth:3d}: PureForward {t_pure:.3f} s, NaiveForward {t_naive:.3f} s, "
              f"speed-up {t_naive / t_pure:.1f}x ({rows[-1]['parameters']} parameters, "
              f"{rows[-1]['input_dims']} input dims)", flush=True)
    return rows


def methods_comparison(args: argparse.Namespace) -> list[dict]:
    """Part 2: Moonwalk vs Backprop vs RevBackprop (vs PureForward), float32."""
    candidates = {"Backprop": methods.Backprop(), "Moonwalk": methods.Moonwalk(),
                  "RevBackprop": methods.RevBackprop(),
                  "PureForward": methods.PureForward(args.chunk_size)}
    rows = []
    for depth in args.depths:
        spec, model, x, y = _setup(depth, args, "float32")
        model64 = mw.load_weights(mw.build(spec, seed=0, dtype="float64"),
                                  mw.export_weights(model))
        ref = mw.value_and_grad(model64, F.cross_entropy, x.double(), y,
                                method=methods.Backprop())[1]
        table = measure.time_interleaved({k: _timer(model, x, y, m)
                                          for k, m in candidates.items()},
                                         repeats=args.repeats)
        for name, method in candidates.items():
            result = mw.gradient(model, F.cross_entropy, x, y, method=method)
            row = table[table.method == name].iloc[0]
            rows.append({"depth": depth, "method": name, "median_s": float(row.median_s),
                         "min_s": float(row.min_s),
                         "ratio_to_backprop": float(row.ratio_to_baseline),
                         "stored_bytes": result.stored_bytes["total"],
                         "float32_error": relative_error(result.grads, ref)["error"],
                         "reconstruction_error": result.info.get("reconstruction_error")})
            r = rows[-1]
            print(f"depth {depth:3d} {name:12s} {r['median_s']:.4f} s (min {r['min_s']:.4f}) "
                  f"({r['ratio_to_backprop']:.2f}x Backprop), stored {r['stored_bytes']} B, "
                  f"float32 error {r['float32_error']:.1e}"
                  + (f", x_0 drift {r['reconstruction_error']:.1e}"
                     if r["reconstruction_error"] is not None else ""), flush=True)
    return rows


def _exponents(rows: list[dict], key: str, label: str) -> dict[str, float]:
    lo, hi = min(r["depth"] for r in rows), max(r["depth"] for r in rows)
    out = {}
    for name in sorted({r.get(label, label) for r in rows}):
        t = {r["depth"]: r[key] for r in rows if r.get(label, label) == name}
        out[name] = math.log(t[hi] / t[lo]) / math.log(hi / lo)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--depths", type=int, nargs="+", default=[6, 60])
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--size", type=int, default=8)
    p.add_argument("--hidden", type=int, default=4)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--chunk-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--naive-repeats", type=int, default=1)
    p.add_argument("--naive-warmup", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/forward_modes.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    forward = forward_modes(args)
    compared = methods_comparison(args)
    scaling = {"PureForward": _exponents([{**r, "method": "PureForward"} for r in forward],
                                         "pure_forward_s", "method")["PureForward"],
               "NaiveForward": _exponents([{**r, "method": "NaiveForward"} for r in forward],
                                          "naive_forward_s", "method")["NaiveForward"],
               **{f"{k} (part 2)": v
                  for k, v in _exponents(compared, "median_s", "method").items()}}
    print("depth-scaling exponents (1 linear, 2 quadratic):",
          {k: round(v, 2) for k, v in scaling.items()})
    summary = {"config": {k: (str(v) if isinstance(v, Path) else v)
                          for k, v in vars(args).items()},
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "forward_modes": forward, "methods": compared, "scaling_exponents": scaling}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
