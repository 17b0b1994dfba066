"""A dry plan of a profile: each stage's estimated time and memory on a device, before it runs.

    python -m moonwalk_core.experiments.plan --profile gpu          # the table, and the total
    python -m moonwalk_core.experiments.plan --profile gpu --json   # the same as JSON

Nothing of the experiments runs. Two things are measured here, on this machine's CPU, at the
profile's per-example sizes or smaller (batch 1 and 2, depth 2 and 4; a few minutes on two cores):

* **bytes**: the peak of one gradient (:func:`moonwalk_core.measure.peak_memory`, torch) per
  network family and method, fitted exactly by ``peak = p0 + p1*depth + p2*batch +
  p3*depth*batch`` and extrapolated to the profile's batch and depths (activations are linear
  in both, and in the length or area, so long nets are measured shorter and scaled; the CPU
  allocator's bytes are the CUDA allocator's up to its rounding);
* **launches**: the work-launching ATen ops of one gradient (``torch._launches.LaunchCounter``),
  per layer, at the profile's length with a narrow net at batch 1, with Moonwalk's FFT solver
  (what its "auto" solver picks on a GPU); an upper bound, as at larger batches several layers
  share one batched doubling of their inverse filters.

Time then follows from stated assumptions about the device (:class:`Device`; defaults for one
H200-class GPU): ``time per gradient = FLOPs / rate + bytes moved / bandwidth + launches *
launch time``, with the FLOPs of the convolutions counted from the sizes, each method's cost in
forward-convolution units (:data:`COST`), three activation-sized tensors moved per unit, and
a compile time per JAX configuration. Each stage's count of gradients
mirrors its experiment module's sweep (warm-up and measured gradient for a peak, warm-up and
repeats per method for a time, the depth search replayed on the fitted peaks). See
``docs/gpu.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from .. import arch, config, measure, methods
from ..config import Profile

__all__ = ["Device", "H200", "COST", "plan", "format_plan"]

GIB = 2**30


@dataclass(frozen=True)
class Device:
    """What the plan assumes about the device (not measured here)."""

    name: str
    flops32: float      # sustained IEEE float32 convolution FLOP/s (TF32 off)
    flops64: float      # sustained float64 FLOP/s
    bandwidth: float    # sustained device-memory bytes/s
    launch_s: float     # host time per launched op (torch eager)
    compile_s: float    # one JAX compilation of a gradient
    memory_bytes: int


H200 = Device("one H200-class GPU (assumed figures)", flops32=25e12, flops64=15e12,
              bandwidth=3e12, launch_s=10e-6, compile_s=4.0, memory_bytes=141 * 10**9)
"""About 40% of the H100/H200 SXM float32 peak (67 TFLOP/s) and 45% of its float64 peak (34,
67 with tensor cores); 60% of the H200's 4.8 TB/s; ~10 us of host time per eager CUDA launch;
a few seconds per XLA compile."""

COST = {"Backprop": 3.0, "Checkpointed": 4.0, "Moonwalk": 5.0, "RevBackprop": 4.0,
        "PureForward": 5.0}
"""Forward-convolution units per layer of one gradient: forward + input vjp + weight vjp = 3
(Backprop); + one recomputed forward (Checkpointed, RevBackprop's inversion); Moonwalk's phase
I forward, phase II input vjp, phase III recomputed forward, vijp (counted as one forward) and
weight vjp = 5; PureForward the same. NaiveForward recomputes every prefix: depth * (depth + 1)
/ 2 forwards plus 2 per layer."""


def _cost(method: str, depth: int) -> float:
    if method == "NaiveForward":
        return depth * (depth + 1) / 2 + 2 * depth
    return COST[method] * depth


def _method(name: str, block_size: int | None) -> methods.Method:
    """The method as it runs on a GPU: Moonwalk's "auto" solver is the FFT solver there, so
    the CPU measurements here use that solver explicitly."""
    if name == "Moonwalk (auto)":
        return methods.Moonwalk(block_size=block_size, checkpoint_every="auto", solver="fft")
    if name == "Moonwalk":
        return methods.Moonwalk(block_size=block_size, solver="fft")
    return getattr(methods, name)()


def _base(name: str) -> str:
    return "Moonwalk" if name.startswith("Moonwalk") else name


MEASURE_LENGTH = 512  # 1D nets: bytes measured at this length at most, then scaled
MEASURE_SIZE = 16     # 2D nets: ... at this side at most


def _reduced(family: str, key: tuple) -> tuple[tuple, float]:
    """A smaller net of the family for measuring bytes, and the factor by which its
    activations per example are smaller (activations are linear in the length or area, so a
    batch of ``b`` examples at the full size holds what ``b * factor`` hold at the reduced)."""
    if family == "conv1d" and key[2] > MEASURE_LENGTH:
        return (key[0], key[1], MEASURE_LENGTH), key[2] / MEASURE_LENGTH
    if family in ("conv2d", "revnet") and key[2] > MEASURE_SIZE:
        return (*key[:2], MEASURE_SIZE, *key[3:]), (key[2] / MEASURE_SIZE) ** 2
    return key, 1.0


@cache
def _bytes_model(family: str, key: tuple, method: str) -> tuple[float, float, float, float]:
    """(p0, p1, p2, p3) of ``peak = p0 + p1*d + p2*b + p3*d*b``, from four measured peaks
    (depths 2 and 4, batches 1 and 2) of a net of the family at most :data:`MEASURE_LENGTH`
    long (or :data:`MEASURE_SIZE` wide), the batch terms scaled to the full size (the head's
    weights, which grow with the length, are taken at the reduced size). Moonwalk with block
    size 32: its bytes hardly depend on the block size."""
    reduced, factor = _reduced(family, key)
    make = _family(family, reduced)
    block_size = 32 if method.startswith("Moonwalk") else None
    peaks = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for d in (2, 4):
            for b in (1, 2):
                peaks[d, b] = measure.peak_memory("torch", make(d), _method(method, block_size),
                                                  batch=b, device="cpu")["peak_bytes"]
    p3 = ((peaks[4, 2] - peaks[2, 2]) - (peaks[4, 1] - peaks[2, 1])) / 2
    p1 = (peaks[4, 1] - peaks[2, 1]) / 2 - p3
    p2 = peaks[2, 2] - peaks[2, 1] - 2 * p3
    p0 = peaks[2, 1] - 2 * p1 - p2 - 2 * p3
    return p0, p1, p2 * factor, p3 * factor


@cache
def _launches_per_layer(family: str, key: tuple, method: str, block_size: int | None) -> float:
    """Launched ops per layer of one gradient (narrow net, batch 1), and at least 1."""
    import torch

    from ..measure.adapter import adapter, synthetic_batch
    from ..torch._launches import count_warm

    make = _family(family, (key[0], 4, *key[2:]))
    be = adapter("torch", "cpu")
    counts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for d in (2, 4):
            model = be.mw.build(make(d), 0, "float32")
            x, y = synthetic_batch(be, make(d), 1, dtype="float32", seed=1)
            m = _method(method, block_size)

            def once(model: Any = model, x: Any = x, y: Any = y, m: Any = m) -> Any:
                return be.mw.gradient(model, torch.nn.functional.cross_entropy, x, y, method=m)

            counts.append(count_warm(once).launches)
    return max((counts[1] - counts[0]) / 2, 1.0)


def _family(family: str, key: tuple) -> Callable[[int], arch.ArchSpec]:
    if family == "conv1d":
        activation, channels, length = key
        return lambda d: arch.causal_conv_net(d, channels=channels, length=length,
                                              activation=activation, patch=min(8, length))
    if family == "conv2d":
        activation, channels, size = key
        return lambda d: arch.conv2d_net(d, channels=channels, size=size, activation=activation,
                                         patch=min(4, size))
    _, channels, size, hidden = key
    return lambda d: arch.revnet(d, channels=channels, size=size, hidden=hidden,
                                 classes=min(10, channels))


def _layer_bytes(family: str, key: tuple, batch: int, itemsize: int) -> float:
    """Bytes of one layer's output activation."""
    if family == "conv1d":
        return float(batch * key[1] * key[2] * itemsize)
    return float(batch * key[1] * key[2] * key[2] * itemsize)


def _layer_flops(family: str, key: tuple, batch: int) -> float:
    """FLOPs of one layer's forward convolution(s)."""
    if family == "conv1d":
        _, c, length = key
        return 2.0 * batch * length * c * c * 3
    if family == "conv2d":
        _, c, size = key
        return 2.0 * batch * size * size * c * c * 9
    _, c, size, hidden = key
    return 2 * 2.0 * batch * size * size * (c // 2) * hidden * 9  # two convs per coupling


class _Stage:
    """Accumulates one stage's gradients, time and largest peak."""

    def __init__(self, device: Device) -> None:
        self.device, self.gradients, self.seconds, self.peak, self.configs = device, 0, 0.0, 0.0, 0

    def grads(self, family: str, key: tuple, method: str, depth: int, batch: int, *, n: int,
              block_size: int | None = None, dtype: str = "float32", jax: bool = False,
              peak: bool = False) -> None:
        """``n`` gradients of ``method`` on a ``depth`` net (float64 costs its own rate);
        ``peak``: include its fitted peak in the stage's."""
        rate = self.device.flops32 if dtype == "float32" else self.device.flops64
        units = _cost(_base(method), depth)
        flops = units * _layer_flops(family, key, batch)
        moved = units * 3 * _layer_bytes(family, key, batch, 4 if dtype == "float32" else 8)
        launches = (0.0 if jax else
                    _launches_per_layer(family, key, method, block_size) * depth)
        self.seconds += n * (flops / rate + moved / self.device.bandwidth
                             + launches * self.device.launch_s)
        self.gradients += n
        if peak and not jax:
            p0, p1, p2, p3 = _bytes_model(family, key, method)
            scale = 2 if dtype == "float64" else 1
            self.peak = max(self.peak, scale * (p0 + p1 * depth + p2 * batch
                                                + p3 * depth * batch))

    def compile(self, n: int = 1) -> None:
        self.seconds += n * self.device.compile_s


def _peak_fn(family: str, key: tuple, method: str, batch: int) -> Callable[[int], float]:
    p0, p1, p2, p3 = _bytes_model(family, key, method)
    return lambda d: p0 + p1 * d + p2 * batch + p3 * d * batch


def _search(stage: _Stage, family: str, key: tuple, method: str, *, budget: float, cap: int,
            batch: int, block_size: int | None) -> int:
    """Replay the depth search on the fitted peaks; charge two gradients per evaluation."""
    depth, evaluations = measure.max_depth_under_budget(
        _peak_fn(family, key, method, batch), budget, hi=cap)
    for d, _ in evaluations:
        stage.grads(family, key, method, d, batch, n=2, block_size=block_size, peak=True)
    return depth


def plan(profile: Profile, device: Device = H200, backends: tuple[str, ...] = ("torch", "jax")
         ) -> list[dict[str, Any]]:
    """One row per stage: configurations, gradients, estimated seconds and peak, notes."""
    rows: list[dict[str, Any]] = []
    analytical = config.estimate_bytes(profile)

    def add(stage_name: str, stage: _Stage, note: str) -> None:
        """A row; a stage whose peaks are not fitted (its largest configuration is small or
        JAX's) takes the analytical upper-end estimate of ``config.estimate_bytes``."""
        experiment = stage_name.removesuffix("_torch").removesuffix("_jax")
        fitted = stage.peak > 0
        peak = stage.peak if fitted else analytical[experiment][0]
        rows.append({"stage": stage_name, "gradients": stage.gradients,
                     "seconds": round(stage.seconds, 1), "peak_gib": round(peak / GIB, 3),
                     "peak_from": "fitted" if fitted else "analytical", "note": note})

    e = profile.exactness
    for backend in backends:
        s = _Stage(device)
        for act in e.activations:
            key = (act, e.channels, e.length)
            for d in e.depths:
                for dtype in e.dtypes:
                    for b in e.block_sizes:
                        s.grads("conv1d", key, "Backprop", d, e.batch, n=1, dtype="float64",
                                jax=backend == "jax")
                        s.grads("conv1d", key, "Moonwalk", d, e.batch, n=1, dtype=dtype,
                                block_size=b, jax=backend == "jax")
                        s.compile(2 if backend == "jax" else 0)
        key = ("leaky_relu", e.channels, e.length)
        maps = [(d, t) for t in (e.map_dtypes if backend == "torch" else [])
                for _ in e.map_inits for _ in e.map_slopes for d in e.map_depths]
        maps += [(max(e.map_depths), t) for t in e.map_dtypes for _ in e.checkpoint_every]
        for d, t in maps:  # float64 reference, Backprop bytes, Moonwalk
            s.grads("conv1d", key, "Backprop", d, e.batch, n=2, dtype="float64",
                    jax=backend == "jax")
            s.grads("conv1d", key, "Moonwalk", d, e.batch, n=1, dtype=t, jax=backend == "jax")
            s.compile(3 if backend == "jax" else 0)
        add(f"exactness_{backend}", s, f"{len(maps)} map/checkpoint configurations")

    m = profile.memory_scaling
    for backend in backends:
        s = _Stage(device)
        for act in m.activations:
            for d in m.depths:
                for name in ("Backprop", "Checkpointed", "Moonwalk"):
                    s.grads("conv1d", (act, m.channels, m.length), name, d, m.batch,
                            n=1 if backend == "jax" else 2, block_size=m.block_size,
                            jax=backend == "jax", peak=True)
                    s.compile(2 if backend == "jax" else 0)  # compiled memory + gradient
        add(f"memory_scaling_{backend}", s, f"batch {m.batch}, depths up to {max(m.depths)}"
            + ("; JAX bytes assumed as torch's" if backend == "jax" else ""))

    md = profile.max_depth
    activations = list(getattr(md, "activations", None) or [getattr(md, "activation",
                                                                     "leaky_relu")])
    s, found = _Stage(device), []
    for act in activations:
        for name in ("Backprop", "Moonwalk", "Moonwalk (auto)"):
            depth = _search(s, "conv1d", (act, md.channels, md.length), name,
                            budget=md.budget_mib * 2**20, cap=md.max_depth, batch=md.batch,
                            block_size=md.block_size)
            found.append(f"{act} {name} {depth}" + (" (cap)" if depth >= md.max_depth else ""))
    if "relu" not in activations:  # the paper's fragmental setting, predicted (not charged)
        for name in ("Backprop", "Moonwalk"):
            depth, _ = measure.max_depth_under_budget(
                _peak_fn("conv1d", ("relu", md.channels, md.length), name, md.batch),
                md.budget_mib * 2**20, hi=md.max_depth)
            found.append(f"[relu {name} {depth}" + (" (cap)" if depth >= md.max_depth else "")
                         + "]")
    add("max_depth_torch", s, "predicted max depth: " + ", ".join(found))

    c = profile.conv2d
    s, found = _Stage(device), []
    for act in c.activations:
        for d in c.depths:
            for name in ("Backprop", "Checkpointed", "Moonwalk"):
                s.grads("conv2d", (act, c.channels, c.size), name, d, c.batch, n=2, peak=True)
    for name in ("Backprop", "Moonwalk", "Moonwalk (auto)"):
        depth = _search(s, "conv2d", ("leaky_relu", c.channels, c.size), name,
                        budget=c.budget_mib * 2**20, cap=c.max_depth, batch=c.batch,
                        block_size=None)
        found.append(f"{name} {depth}" + (" (cap)" if depth >= c.max_depth else ""))
    add("conv2d_torch", s, "predicted max depth: " + ", ".join(found))

    r = profile.runtime
    s = _Stage(device)
    key = ("leaky_relu", r.channels, r.length)
    blocked = min((b for b in r.block_sizes if b is not None), default=None)
    for d in r.depths:
        for name, b in (("Backprop", None), ("Checkpointed", None), ("Moonwalk", None),
                        ("Moonwalk", blocked)):
            s.grads("conv1d", key, name, d, r.batch, n=1 + r.warmup + r.repeats, block_size=b)
    for b in r.block_sizes:
        for name in ("Backprop", "Moonwalk"):
            s.grads("conv1d", key, name, r.block_depth, r.batch, n=1 + r.warmup + r.repeats,
                    block_size=b)
        s.grads("conv1d", key, "Backprop", r.block_depth, r.batch, n=1, dtype="float64")
        s.grads("conv1d", key, "Moonwalk", r.block_depth, r.batch, n=1, block_size=b)
    add("runtime_torch", s, f"{r.warmup} warm-up + {r.repeats} repeats per method")

    v = profile.revnet_modes
    s = _Stage(device)
    key = ("revnet", v.channels, v.size, v.hidden)
    for d in v.depths:
        names = ["Backprop", "RevBackprop", "Moonwalk", "PureForward"]
        names += ["NaiveForward"] if d <= v.naive_max_depth else []
        for name in names:
            # one untimed call before the rounds, and a sample of a short call repeats it
            # until min_sample_s has passed: about that much more per round (1.5x to spare)
            s.grads("revnet", key, name, d, v.batch, n=2 + v.warmup + v.repeats, dtype=v.dtype,
                    peak=name != "NaiveForward" and d == max(v.depths))
            s.seconds += (v.warmup + v.repeats) * 1.5 * v.min_sample_s
            s.grads("revnet", key, "Backprop", d, v.batch, n=1, dtype="float64", peak=False)
            s.grads("revnet", key, name, d, v.batch, n=1, dtype=v.dtype, peak=False)
    add("revnet_modes_torch", s, f"depths {v.depths}, NaiveForward up to {v.naive_max_depth}")

    t = profile.training
    s = _Stage(device)
    steps = t.epochs * math.ceil(0.8 * t.num_samples / t.batch)
    for name in ("Backprop", "Moonwalk"):
        s.grads("conv1d", ("leaky_relu", t.channels, 40), name, t.depth, t.batch, n=steps,
                block_size=t.block_size)
    add("training_torch", s, f"{steps} steps per method (MNIST-1D, length 40)")

    b = profile.backends
    s = _Stage(device)
    for d in b.depths:
        for name in ("Backprop", "Checkpointed", "Moonwalk"):
            s.grads("conv1d", ("leaky_relu", b.channels, b.length), name, d, b.batch, n=3,
                    dtype=b.dtype)
            s.compile(2)
    add("backends", s, "torch and JAX, float64")
    return rows


def format_plan(rows: list[dict[str, Any]], profile: Profile, device: Device,
                budget_s: float | None = None) -> str:
    """The plan as a fixed-width table with its total and the assumptions."""
    lines = [f"Dry plan of profile {profile.name!r} on {device.name}",
             f"{'stage':22} {'gradients':>9} {'est. s':>8} {'est. peak GiB':>13} "
             f"{'peak from':>10}  note"]
    for r in rows:
        lines.append(f"{r['stage']:22} {r['gradients']:>9} {r['seconds']:>8.1f} "
                     f"{r['peak_gib']:>13.3f} {r['peak_from']:>10}  {r['note']}")
    total = sum(r["seconds"] for r in rows)
    lines.append(f"{'total':22} {sum(r['gradients'] for r in rows):>9} {total:>8.1f}"
                 + (f"  (budget {budget_s:g} s: {'fits' if total <= budget_s else 'OVER'})"
                    if budget_s else ""))
    lines.append("assumed: " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in asdict(device).items() if k != "name")
                 + "; method cost per layer in forward convolutions: "
                 + ", ".join(f"{k} {v:g}" for k, v in COST.items())
                 + "; measured here: peak bytes per layer and launches per layer (torch)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moonwalk_core.experiments.plan",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--backends", default="torch,jax")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    profile = config.load_profile(args.profile)
    rows = plan(profile, H200, tuple(args.backends.split(",")))
    if args.json:
        print(json.dumps({"profile": profile.name, "device": asdict(H200), "stages": rows,
                          "total_s": round(sum(r["seconds"] for r in rows), 1)}, indent=1))
    else:
        print(format_plan(rows, profile, H200, args.budget_s))
    total = sum(r["seconds"] for r in rows)
    return 0 if total <= args.budget_s else 1


if __name__ == "__main__":
    sys.exit(main())
