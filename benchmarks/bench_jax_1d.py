"""Benchmark: the 16-layer causal-conv net in JAX on the CPU, float32, jitted.

Reports, per method: XLA's compiled memory analysis of one jitted gradient (temp bytes), its
compile time, stored bytes (the package's own accounting: residual/fragment leaf bytes;
``jax.vjp`` residual bytes for autodiff methods), run time as a ratio to ``jax.grad``
(Backprop; interleaved in one process, median of repeats) and the float32 gradient error
against float64 Backprop.

    .venv/bin/python benchmarks/bench_jax_1d.py [--depth 16 --channels 64 --length 1024
        --batch 32 --block-size 128 --repeats 5 --out benchmarks/out/jax_1d.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # for the float64 reference only; the run is float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import moonwalk_core.jax as mw  # noqa: E402
from moonwalk_core import arch, measure, methods  # noqa: E402
from moonwalk_core.measure.adapter import jax_cross_entropy as cross_entropy  # noqa: E402
from moonwalk_core.measure.adapter import relative_error  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--depth", type=int, default=16)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/jax_1d.json"))
    args = p.parse_args(argv)

    spec = arch.causal_conv_net(args.depth, channels=args.channels, length=args.length)
    candidates = {
        "Backprop": methods.Backprop(),
        "Checkpointed": methods.Checkpointed(),
        "Moonwalk(sequential)": methods.Moonwalk(),
        f"Moonwalk(block_size={args.block_size})": methods.Moonwalk(block_size=args.block_size),
    }
    model = mw.build(spec, seed=0, dtype="float32")
    x = mw.random_input((args.batch, *spec.input_shape), dtype="float32", seed=1)
    y = jnp.asarray(np.arange(args.batch) % spec.output_shape[0])
    model64 = mw.load_weights(mw.build(spec, seed=0, dtype="float64"), mw.export_weights(model))
    ref = mw.value_and_grad(model64, cross_entropy, x.astype(jnp.float64), y,
                            method=methods.Backprop())[1]
    rows: dict[str, dict] = {}
    for name, method in candidates.items():
        compiled = mw.compiled_memory(model, cross_entropy, x, y, method)
        result = mw.gradient(model, cross_entropy, x, y, method=method)  # compiles once more
        rows[name] = {
            "temp_bytes": compiled["temp_bytes"], "memory_source": compiled["source"],
            "compile_s": compiled["compile_seconds"],
            "stored_bytes": result.stored_bytes["total"], "stored_breakdown": result.stored_bytes,
            "grad_rel_error_vs_float64_backprop": relative_error(result.grads, ref)["error"],
            "self_check": result.self_check,
        }
        print(f"compiled {name}", file=sys.stderr)
    timing = measure.time_interleaved(
        {name: (lambda m=m: mw.value_and_grad(model, cross_entropy, x, y, method=m))
         for name, m in candidates.items()},
        repeats=args.repeats, warmup=1, baseline="Backprop")
    for rec in timing.to_dict("records"):
        rows[rec["method"]].update(median_s=rec["median_s"], min_s=rec["min_s"],
                                   max_s=rec["max_s"], time_ratio=rec["ratio_to_baseline"])
    base = rows["Backprop"]
    for row in rows.values():
        row["temp_ratio_to_backprop"] = row["temp_bytes"] / base["temp_bytes"]
        row["stored_ratio_to_backprop"] = row["stored_bytes"] / base["stored_bytes"]
    report = {"config": vars(args) | {"out": str(args.out)}, "jax": jax.__version__,
              "devices": [str(d) for d in jax.devices()], "cpus": os.cpu_count(),
              "methods": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    mib = 2**20
    print("| method | XLA temp MiB (ratio) | compile s | stored MiB (ratio) | time s (ratio) | "
          "grad error vs float64 Backprop | self-check |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        check = "-" if r["self_check"] is None else f"{r['self_check']:.1e}"
        print(f"| {name} | {r['temp_bytes'] / mib:.1f} ({r['temp_ratio_to_backprop']:.2f}x) "
              f"| {r['compile_s']:.1f} "
              f"| {r['stored_bytes'] / mib:.1f} ({r['stored_ratio_to_backprop']:.2f}x) "
              f"| {r['median_s']:.3f} ({r['time_ratio']:.2f}x) "
              f"| {r['grad_rel_error_vs_float64_backprop']:.1e} | {check} |")
    return report


if __name__ == "__main__":
    main()
