"""The device and float32 precision a measurement runs with, set once per run and recorded.

On Ampere and later GPUs, cuDNN convolutions (and, when enabled, cuBLAS matmuls) may compute
float32 with TF32 tensor cores (10-bit mantissa), and JAX's default float32 matmul precision
is not full float32 either. The harness measures IEEE float32: :func:`use_ieee_float32` turns
those shortcuts off for the whole run (the process-wide form of the backends' ``ieee_float32``
blocks), and :func:`precision_flags` reads what is in force through the backends'
``precision_flags``, so every environment file (and the GPU runner's manifest) states it.
:func:`device_record` names the device the numbers come from. See ``docs/gpu.md``.
"""

from __future__ import annotations

import sys
from typing import Any

from .adapter import current_device, jax_platform

__all__ = ["device_record", "use_ieee_float32", "precision_flags"]


def use_ieee_float32(*, jax_too: bool = True) -> dict[str, Any]:
    """Make float32 mean IEEE float32 in this process: TF32 off for cuBLAS matmuls and cuDNN
    convolutions (torch) and ``jax_default_matmul_precision="highest"`` (JAX, when importable
    and ``jax_too``). A process-wide setting, like the thread count; returns
    :func:`precision_flags` afterwards."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    if jax_too:
        try:
            import jax
        except ImportError:
            pass
        else:
            jax.config.update("jax_default_matmul_precision", "highest")
    return precision_flags()


def precision_flags() -> dict[str, Any]:
    """The float32 precision settings in force: torch's TF32 flags and float32 matmul
    precision, and JAX's default matmul precision (None: JAX's own default, which may use
    reduced precision on GPUs), when those frameworks are imported."""
    flags: dict[str, Any] = {}
    if sys.modules.get("torch") is not None:
        from ..torch._precision import precision_flags as torch_flags

        flags.update(torch_flags())
    jax = sys.modules.get("jax")
    if jax is not None:  # the key of the JAX backend's precision_flags, read without its imports
        flags["jax_default_matmul_precision"] = jax.config.jax_default_matmul_precision
    return flags


def device_record(backend: str = "torch", device: str | None = None) -> dict[str, Any]:
    """What computed the rows: ``device`` (the GPU's name, or "cpu (<processor>)"),
    ``device_setting`` (the torch device name used), and for CUDA the CUDA and cuDNN versions
    and the GPU's memory; for JAX the platform and device kind."""
    device = current_device() if device is None else device
    record: dict[str, Any] = {"device_setting": device}
    if backend == "jax":
        try:
            import jax
        except ImportError:
            return {**record, "device": "jax not installed"}
        target = jax.devices(jax_platform(device))[0]
        kind = str(target.device_kind)
        return {**record, "jax_platform": target.platform,
                "device": kind if target.platform != "cpu" else f"cpu ({_cpu_model()})"}
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        return {**record, "device": props.name, "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(), "gpu_memory_bytes": props.total_memory,
                "gpu_capability": f"{props.major}.{props.minor}"}
    return {**record, "device": f"cpu ({_cpu_model()})"}


def _cpu_model() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
