"""Peak memory of one gradient, from the framework's own accounting, with a source label."""

from __future__ import annotations

from typing import Any

__all__ = ["peak_memory", "peak_rss_fresh_process"]


def peak_memory(backend: str, spec: Any, method: Any, *, batch: int, dtype: str = "float32",
                device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Peak memory of one gradient call on a synthetic batch.

    Builds the model with ``get_backend(backend).build(spec, seed, dtype)``, draws ``x`` normal
    and ``y`` random class indices over the output features, and measures one
    ``gradient(model, cross_entropy, x, y, method=method)``.

    Returns:
        ``{"peak_bytes", "stored_bytes", "source"}``; ``source`` is "CUDA peak allocated",
        "torch profiler memory events (CPU allocator)" or "XLA compiled memory analysis (temp
        bytes)". ``stored_bytes`` is the method's own ``stored_bytes["total"]``.
    """
    raise NotImplementedError


def peak_rss_fresh_process(backend: str, spec_dict: dict[str, Any], method: Any, *, batch: int,
                           dtype: str = "float32") -> dict[str, Any]:
    """Peak resident memory one gradient adds, measured in a fresh Python process.

    Returns:
        ``{"peak_rss_added_bytes", "source": "peak RSS added, fresh process"}``.
    """
    raise NotImplementedError
