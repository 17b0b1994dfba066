"""Why ``jax.checkpoint`` saves no compiled temp memory on XLA:CPU (E2's JAX checkpoint rows).

A plain ``lax.conv`` net of ``depth`` identical ReLU conv layers, ``jax.value_and_grad`` jitted;
XLA's compiled memory analysis (temp bytes) of:

* ``plain``: no checkpointing;
* ``checkpoint``: ``jax.checkpoint`` around each of ``segments`` contiguous runs of layers,
  unrolled (what ``baselines.jax_plain_loss`` builds), with ``prevent_cse`` on and off;
* ``tied``: the same segments as a ``custom_vjp`` whose backward puts an
  ``optimization_barrier`` on (inputs, cotangent) before recomputing, so the recomputation
  depends on the cotangent;
* ``scan``: the segments as ``lax.scan`` over stacked weights of ``jax.checkpoint(segment)``
  (the loop orders the recomputation into the backward pass), with and without the checkpoint;

and, per variant, the convolutions and optimization barriers left in the compiled program
(the recomputation is there when the count exceeds the plain net's). See
``docs/measurement.md`` (JAX checkpointing on XLA:CPU).

    .venv/bin/python benchmarks/bench_jax_checkpoint.py [--depth 32 --channels 16
        --length 256 --batch 8 --segments 4 8 --out benchmarks/out/jax_checkpoint.json]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def _layer(w: Any, x: Any) -> Any:
    k = w.shape[-1]
    y = lax.conv_general_dilated(x, w, (1,), [(k - 1, 0)], dimension_numbers=("NCH", "OIH",
                                                                              "NCH"))
    return jax.nn.relu(y)


def _run(ws: Any, x: Any) -> Any:
    for i in range(ws.shape[0]):
        x = _layer(ws[i], x)
    return x


def _tied(f: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    @jax.custom_vjp
    def g(p: Any, x: Any) -> Any:
        return f(p, x)

    def fwd(p: Any, x: Any) -> tuple[Any, tuple[Any, Any]]:
        return f(p, x), (p, x)

    def bwd(res: tuple[Any, Any], ct: Any) -> Any:
        p, x, ct = lax.optimization_barrier((*res, ct))
        return jax.vjp(f, p, x)[1](ct)

    g.defvjp(fwd, bwd)
    return g


def _bounds(depth: int, segments: int) -> list[tuple[int, int]]:
    b = np.linspace(0, depth, segments + 1).round().astype(int)
    return list(zip(b[:-1].tolist(), b[1:].tolist(), strict=True))


def variants(depth: int, segments: list[int]) -> dict[str, Callable[[Any, Any], Any]]:
    """Loss functions ``loss(ws, x)`` (``ws``: stacked weights) by label."""
    out: dict[str, Callable[[Any, Any], Any]] = {"plain": lambda ws, x: jnp.sum(_run(ws, x) ** 2)}
    for s in segments:
        def unrolled(ws: Any, x: Any, s: int = s, wrap: Callable = jax.checkpoint) -> Any:
            for a, b in _bounds(depth, s):
                x = wrap(_run)(ws[a:b], x)
            return jnp.sum(x ** 2)

        out[f"checkpoint, {s} segments"] = unrolled
        out[f"checkpoint (prevent_cse=False), {s} segments"] = (
            lambda ws, x, s=s, u=unrolled: u(ws, x, s, lambda f: jax.checkpoint(
                f, prevent_cse=False)))
        out[f"tied to the cotangent, {s} segments"] = (
            lambda ws, x, s=s, u=unrolled: u(ws, x, s, _tied))
        if depth % s == 0:
            for label, body in (("scan, no checkpoint", _run), ("scan of checkpoint",
                                                                 jax.checkpoint(_run))):
                def scanned(ws: Any, x: Any, s: int = s, body: Callable = body) -> Any:
                    parts = ws.reshape(s, depth // s, *ws.shape[1:])
                    x, _ = lax.scan(lambda c, p: (body(p, c), None), x, parts)
                    return jnp.sum(x ** 2)

                out[f"{label}, {s} segments"] = scanned
    return out


def measure(loss: Callable[[Any, Any], Any], ws: Any, x: Any) -> dict[str, Any]:
    lowered = jax.jit(jax.value_and_grad(loss)).lower(ws, x)
    compiled = lowered.compile()
    text = compiled.as_text()
    return {"temp_bytes": int(compiled.memory_analysis().temp_size_in_bytes),
            "convolutions_compiled": text.count(" convolution("),
            "barriers_lowered": lowered.as_text().count("optimization_barrier"),
            "barriers_compiled": text.count("opt-barrier")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--segments", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--out", default="benchmarks/out/jax_checkpoint.json")
    a = parser.parse_args()
    key = jax.random.PRNGKey(0)
    ws = jax.random.normal(key, (a.depth, a.channels, a.channels, 3)) * 0.3
    x = jax.random.normal(jax.random.fold_in(key, 1), (a.batch, a.channels, a.length))
    activation = a.batch * a.channels * a.length * 4
    rows = []
    print(f"jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; one "
          f"activation {activation} bytes, depth {a.depth}")
    for label, loss in variants(a.depth, a.segments).items():
        row = {"variant": label, **measure(loss, ws, x)}
        row["temp_activations"] = row["temp_bytes"] / activation
        rows.append(row)
        print(f"{label:48s} temp {row['temp_bytes']:>10d} B ({row['temp_activations']:5.1f} "
              f"activations)  convolutions {row['convolutions_compiled']:4d}  barriers "
              f"lowered/compiled {row['barriers_lowered']}/{row['barriers_compiled']}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"args": vars(a), "jax": jax.__version__,
                                       "xla_flags": os.environ.get("XLA_FLAGS", ""),
                                       "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
