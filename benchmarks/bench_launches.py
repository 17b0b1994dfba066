"""Benchmark: kernel launches and host syncs per gradient, Backprop vs each Moonwalk variant.

A method whose kernels are small is bound on a GPU by the host's cost per launch (~10 µs), and
every host sync stalls the stream; both are counted on the CPU (docs/measurement.md, 'Launches
and syncs'): work-launching ATen ops (views and allocations excluded) and syncs (``.item()``-like
ops, ``nonzero``, ``masked_select``, host copies, ``linalg``'s error checks) over one warm
gradient. Nets: the 1D causal-conv family (leaky ReLU and ReLU) and the masked conv2d family, at
two depths each.

    .venv/bin/python benchmarks/bench_launches.py [--depths 8 16 --channels 64 --length 1024
        --batches 4 256 --block-size 128 --out benchmarks/out/launches.json]

The FFT solver's counts depend on the batch: it makes the inverse filters of several layers in
one batched doubling when their bytes fit in one activation's (docs/method.md, 'The FFT
solver'), which a large batch allows and a small one does not. So every net is counted at each
of ``--batches``; the other methods' counts do not depend on it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, methods
from moonwalk_core.torch._launches import LaunchCounter, count_warm


def _variants(block_size: int) -> dict[str, object]:
    return {
        "Backprop": methods.Backprop(),
        f"Moonwalk substitution b={block_size}": methods.Moonwalk(block_size=block_size,
                                                                  solver="substitution"),
        "Moonwalk fft": methods.Moonwalk(solver="fft"),
        f"Moonwalk fft b={block_size}": methods.Moonwalk(block_size=block_size, solver="fft"),
        "Moonwalk fft auto": methods.Moonwalk(checkpoint_every="auto", solver="fft"),
    }


def _count(spec: arch.ArchSpec, method: object, batch: int) -> LaunchCounter:
    model = mw.build(spec, seed=0, dtype="float32")
    x = mw.random_input((batch, *spec.input_shape), dtype="float32", seed=1)
    y = torch.arange(batch) % spec.output_shape[0]
    return count_warm(lambda: mw.gradient(model, F.cross_entropy, x, y, method=method))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--size", type=int, default=16, help="image side of the 2D net")
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 256])
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/launches.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    nets = {}
    for depth in args.depths:
        for act in ("leaky_relu", "relu"):
            nets[f"1d {act} depth {depth}"] = arch.causal_conv_net(
                depth, channels=args.channels, length=args.length, activation=act)
        nets[f"2d masked depth {depth}"] = arch.conv2d_net(depth, channels=args.channels // 4,
                                                           size=args.size)
    rows = []
    for batch in args.batches:
        for net, spec in nets.items():
            base = None
            variants = _variants(args.block_size if net.startswith("1d") else 4)
            for name, method in variants.items():
                counter = _count(spec, method, batch)
                base = counter.launches if base is None else base
                rows.append({"net": net, "batch": batch, "method": name,
                             "launches": counter.launches, "syncs": counter.syncs,
                             "vs_backprop": counter.launches / base,
                             "top_ops": dict(counter.ops.most_common(5))})
                print(f"batch {batch:4d} {net:26s} {name:32s} launches {counter.launches:6d} "
                      f"({counter.launches / base:5.1f}x)  syncs {counter.syncs:3d}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                    "torch": torch.__version__, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
