"""Peak memory of one call from PyTorch's own allocator accounting.

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was
  allocated when the call started (the caching allocator's live-tensor bytes, not its reserve).
* CPU: the profiler's memory events (``profile_memory=True``): every allocation and free of
  the CPU allocator during the call, in time order; the peak of their running sum.

Both give the peak bytes the call added on top of what already existed (model, batch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["peak_of_call", "tensor_bytes", "SOURCES"]

T = TypeVar("T")

SOURCES = {
    "cuda": "CUDA peak allocated",
    "cpu": "torch profiler memory events (CPU allocator)",
}
_MEMORY_EVENT = "[memory]"


def _cuda_peak(fn: Callable[[], T], device: torch.device) -> tuple[int, T]:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - start, result


def _cpu_peak(fn: Callable[[], T]) -> tuple[int, T]:
    from torch._C._autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    # Note: [why kineto_results] ``prof.events()`` aggregates memory per operator, which loses
    # the order of allocations and frees; the raw memory events keep it. Each carries the bytes
    # allocated (> 0) or freed (< 0) by the CPU allocator; their running sum is the live-byte
    # change since the call started, and its maximum is the call's peak.
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == _MEMORY_EVENT and e.device_type() == DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return peak, result


def peak_of_call(fn: Callable[[], T], device: str | torch.device = "cpu") -> tuple[int, str, T]:
    """Run ``fn()`` once and measure the peak bytes it allocated on ``device``.

    Args:
        fn: the call to measure (e.g. one gradient); its result is returned.
        device: "cpu" or a CUDA device; selects the source.

    Returns:
        ``(peak_bytes, source, result)``: the peak of live allocated bytes above the level at
        the start of the call, its source label (see ``SOURCES``) and what ``fn`` returned.

    Raises:
        ValueError: for a device that is neither CPU nor CUDA, or CUDA when it is unavailable.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r}: CUDA is not available on this machine")
        peak, result = _cuda_peak(fn, dev)
    elif dev.type == "cpu":
        peak, result = _cpu_peak(fn)
    else:
        raise ValueError(f"device={str(device)!r} is not supported; use 'cpu' or 'cuda'")
    return int(peak), SOURCES[dev.type], result


def tensor_bytes(*objects: Any) -> int:
    """Bytes of the distinct tensor storages among ``objects`` (tensors or modules)."""
    seen: dict[int, int] = {}
    for obj in objects:
        tensors = obj.parameters() if isinstance(obj, torch.nn.Module) else [obj]
        for t in tensors:
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())
