"""Peak memory of one gradient, from the framework's own accounting, with a source label.

``peak_memory`` measures inside this process: CUDA peak allocated on GPU, the torch profiler's
CPU-allocator events on CPU (both after one unmeasured warm-up gradient), XLA's compiled memory
analysis for JAX.
``peak_rss_fresh_process`` is the cross-check: the resident-set high-water mark one gradient adds
in a fresh interpreter (``python -m moonwalk_core.measure.peak``). Numbers from different sources
are not interchangeable; every row carries its ``source``. See ``docs/measurement.md``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
from typing import Any

from .. import methods
from ..arch import ArchSpec, load
from .adapter import adapter, current_device, jax_cross_entropy, jax_platform, synthetic_batch

__all__ = ["peak_memory", "peak_rss_fresh_process"]

RSS_SOURCE = "peak RSS added, fresh process"
# Note: [fixed mmap threshold] glibc serves blocks >= M_MMAP_THRESHOLD with mmap and unmaps them
# on free, but by default raises the threshold after such frees, so a second gradient's buffers
# would come from heap pages the first left resident, and RSS would not see them. A fixed
# threshold (setting it disables the adjustment) returns every large buffer to the system.
_FRESH_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


# Note: [warm-up before a peak]
# The first gradient in a process also allocates what the process keeps afterwards (library
# workspaces, lazily built kernels and caches): measured first, a configuration would read a few
# KiB higher than measured after another one, so a sweep resumed in a fresh process would not
# agree with an uninterrupted one. One unmeasured gradient on the same model and batch runs first.


def _torch_peak(spec: ArchSpec, method: Any, batch: int, dtype: str, device: str,
                seed: int) -> dict[str, Any]:
    from ..torch._peak import peak_of_call, tensor_bytes

    be = adapter("torch", device)
    model = be.mw.build(spec, seed, dtype)
    x, y = synthetic_batch(be, spec, batch, dtype=dtype, seed=seed + 1, device=device)

    def call() -> Any:
        return be.mw.gradient(model, be.loss_fn, x, y, method=method)

    call()  # Note: [warm-up before a peak]
    gc.collect()
    peak, source, result = peak_of_call(call, device)
    return {"peak_bytes": peak, "stored_bytes": int(result.stored_bytes["total"]),
            "source": source, "model_and_batch_bytes": tensor_bytes(model, x, y),
            "self_check": result.self_check}


def _jax_peak(spec: ArchSpec, method: Any, batch: int, dtype: str, device: str,
              seed: int) -> dict[str, Any]:
    be = adapter("jax", device)
    model = be.mw.build(spec, seed, dtype)
    x, y = synthetic_batch(be, spec, batch, dtype=dtype, seed=seed + 1, device=jax_platform(device))
    memory = be.mw.compiled_memory(model, jax_cross_entropy, x, y, method)
    result = be.mw.gradient(model, jax_cross_entropy, x, y, method=method)
    return {"peak_bytes": memory["temp_bytes"],
            "stored_bytes": int(result.stored_bytes["total"]), "source": memory["source"],
            "model_and_batch_bytes": memory["argument_bytes"],
            "self_check": None if result.self_check is None else float(result.self_check)}


def peak_memory(backend: str, spec: Any, method: Any, *, batch: int, dtype: str = "float32",
                device: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Peak memory of one gradient call on a synthetic batch.

    Builds the model with ``get_backend(backend).build(spec, seed, dtype)``, draws the batch
    with :func:`moonwalk_core.measure.adapter.synthetic_batch` (seed ``seed + 1``) and measures
    one ``gradient(model, cross_entropy, x, y, method=method)``.

    ``peak_bytes`` is what the call allocated on top of what existed before it (the model and
    the batch, reported separately as ``model_and_batch_bytes``): torch measures the peak of
    live allocated bytes above the level at the call's start, after one unmeasured warm-up
    gradient (Note: [warm-up before a peak]); JAX reports XLA's temporary buffers of the
    compiled ``value_and_grad`` (its arguments are the model and batch).

    Args:
        backend: "torch" or "jax".
        spec: an :class:`~moonwalk_core.arch.ArchSpec` or anything ``arch.load`` accepts.
        method: a method object from :mod:`moonwalk_core.methods`.
        batch: examples in the synthetic batch.
        dtype: "float32" or "float64".
        device: "cpu", "cuda" or "cuda:<n>" (JAX: the matching platform); None: the
            harness's device (``adapter.current_device``, set from the profile's ``device``).
        seed: seeds the weights (``seed``) and the batch (``seed + 1``).

    Returns:
        ``{"peak_bytes", "stored_bytes", "source", "model_and_batch_bytes", "self_check"}``
        (``self_check``: Moonwalk's a-posteriori error estimate, None for others); ``source`` is
        "CUDA peak allocated", "torch profiler memory events (CPU allocator)" or "XLA compiled
        memory analysis (temp bytes)". ``stored_bytes`` is the method's own
        ``stored_bytes["total"]``.

    Raises:
        ValueError: for a backend other than "torch" or "jax".
        Unavailable: when the backend's framework is not installed.
    """
    spec = spec if isinstance(spec, ArchSpec) else load(spec)
    device = current_device() if device is None else device
    if backend == "torch":
        return _torch_peak(spec, method, batch, dtype, device, seed)
    if backend == "jax":
        return _jax_peak(spec, method, batch, dtype, device, seed)
    raise ValueError(f"backend={backend!r} is not supported; use 'torch' or 'jax'")


def _method_to_dict(method: Any) -> dict[str, Any]:
    return {"type": type(method).__name__, **dataclasses.asdict(method)}


def _method_from_dict(data: dict[str, Any]) -> Any:
    fields = dict(data)
    return getattr(methods, fields.pop("type"))(**fields)


def peak_rss_fresh_process(backend: str, spec_dict: dict[str, Any] | ArchSpec, method: Any, *,
                           batch: int, dtype: str = "float32", seed: int = 0,
                           timeout: float = 600.0) -> dict[str, Any]:
    """Peak resident memory one gradient adds, measured in a fresh Python process.

    The child imports the backend, builds the model and batch, resets the kernel's RSS
    high-water mark to the current RSS (``/proc/self/clear_refs``), runs one gradient and reads
    the high-water mark (``VmHWM``) again; where /proc is missing it falls back to
    ``ru_maxrss``, which imports may dominate. RSS counts pages, includes allocator caching
    and first-call library setup: a cross-check, not the primary source.

    Args:
        backend: "torch" or "jax".
        spec_dict: the architecture as plain data (or an ``ArchSpec``).
        method: a method object from :mod:`moonwalk_core.methods`.
        batch, dtype, seed: as in :func:`peak_memory` (CPU only).
        timeout: seconds before the child is killed.

    Returns:
        ``{"peak_rss_added_bytes", "source": "peak RSS added, fresh process"}``.

    Raises:
        RuntimeError: if the child fails (its stderr is included).
    """
    if isinstance(spec_dict, ArchSpec):
        spec_dict = spec_dict.to_dict()
    request = {"backend": backend, "spec": spec_dict, "method": _method_to_dict(method),
               "batch": batch, "dtype": dtype, "seed": seed}
    proc = subprocess.run([sys.executable, "-m", "moonwalk_core.measure.peak",
                           json.dumps(request)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **_FRESH_ENV})
    if proc.returncode != 0:
        raise RuntimeError(f"peak_rss_fresh_process: the child failed ({proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    reply = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"peak_rss_added_bytes": reply["after"] - reply["before"], "source": RSS_SOURCE}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> int:
    """Reset the RSS high-water mark to the current RSS (Linux clear_refs); return it in bytes.

    Without the reset, the high-water mark of the imports would hide a small gradient. Where
    /proc is unavailable, fall back to ``ru_maxrss`` (KiB on Linux), which cannot be reset.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5: reset the peak resident set size (proc(5))
        return _status_kib("VmRSS") * 1024
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_rss() -> int:
    try:
        return _status_kib("VmHWM") * 1024
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(request: dict[str, Any]) -> dict[str, int]:
    """One gradient in this (fresh) process; RSS before and its high-water mark after, bytes.

    One unmeasured gradient runs first, so compilation (JAX) and one-time library setup (kernel
    and LAPACK workspaces, lazy imports) are not charged to the measured one.
    """
    spec = load(request["spec"])
    method = _method_from_dict(request["method"])
    batch, dtype, seed = request["batch"], request["dtype"], request["seed"]
    be = adapter(request["backend"])
    if be.name == "jax" and dtype == "float64":
        from .adapter import enable_jax_float64

        enable_jax_float64()
    model = be.mw.build(spec, seed, dtype)
    x, y = synthetic_batch(be, spec, batch, dtype=dtype, seed=seed + 1)

    def run(n: int) -> None:
        grads = be.mw.value_and_grad(model, be.loss_fn, x[:n], y[:n], method=method)
        if be.name == "jax":
            import jax

            jax.block_until_ready(grads)

    run(batch)  # compiles (JAX) and sets up libraries; see _FRESH_ENV for why it is harmless
    gc.collect()
    before = _reset_peak_rss()
    run(batch)
    return {"before": before, "after": _peak_rss()}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
