"""Scratch buffers and padded activations for one no-grad gradient computation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

__all__ = ["scratch", "left_padded", "halo_empty_like", "zeroed"]


class _Local(threading.local):
    buffers: dict[tuple, Tensor] | None = None
    halo: int = 0
    halos: dict[int, Tensor] | None = None  # id -> every buffer halo_empty_like made


_LOCAL = _Local()


@contextmanager
def scratch(halo: int = 0) -> Iterator[None]:
    """Within the block (and this thread), reuse padding buffers and pad activations.

    # Note: [scratch buffers]
    Each causal conv pads its input in time. A fresh padded copy per layer and phase costs
    a zero fill of new memory (page faults on the CPU) every time; a reused buffer needs only
    the copy (:func:`left_padded`). Better still, an elementwise layer can write its output
    into memory that already has ``halo`` zero steps in front of each sequence
    (:func:`halo_empty_like`), and the next conv then reads it in place, with no copy. Only
    no-grad code uses either: autograd would save a buffer that the next layer overwrites.
    A padded activation's buffer is reused once no tensor shares its storage any more (fresh
    memory would cost page faults again).
    """
    outer = (_LOCAL.buffers, _LOCAL.halo, _LOCAL.halos)
    _LOCAL.buffers, _LOCAL.halo, _LOCAL.halos = {}, halo, {}
    try:
        yield
    finally:
        _LOCAL.buffers, _LOCAL.halo, _LOCAL.halos = outer


def halo_empty_like(x: Tensor) -> Tensor | None:
    """An uninitialised time-major tensor shaped like ``x`` (B, C, T) whose memory holds
    ``halo`` zero steps before each sequence; None outside :func:`scratch`, under autograd,
    for other ranks, or when no halo was asked for."""
    halo, halos = _LOCAL.halo, _LOCAL.halos
    if halos is None or halo == 0 or x.ndim != 3 or torch.is_grad_enabled():
        return None
    batch, channels, length = x.shape
    shape = (batch, halo + length, channels)
    buf = next((b for b in halos.values() if b.shape == shape and b.dtype == x.dtype
                and b.device == x.device and _unshared(b)), None)
    if buf is None:
        buf = x.new_empty(shape)
        buf[:, :halo].zero_()  # written once: every user writes only the interior
        halos[id(buf)] = buf
    return buf[:, halo:].transpose(1, 2)


def _unshared(buf: Tensor) -> bool:
    """Whether nothing but ``buf`` itself holds its storage (no view, no other tensor)."""
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    if use_count is None:  # no way to tell: never reuse
        return False
    return use_count(buf.untyped_storage()._cdata) <= 2  # buf and the temporary wrapper


def _halo_base(x_tm: Tensor, pad: int) -> Tensor | None:
    """The padded buffer ``x_tm`` (B, T, C) lies in, when :func:`halo_empty_like` made it
    with exactly ``pad`` zero steps in front."""
    base, halos = x_tm._base, _LOCAL.halos
    if base is None or not halos or halos.get(id(base)) is not base:
        return None
    batch, length, channels = x_tm.shape
    if (base.shape != (batch, pad + length, channels) or not base.is_contiguous()
            or x_tm.storage_offset() != base.storage_offset() + pad * channels
            or x_tm.stride() != base.stride()):
        return None
    return base


def left_padded(x_tm: Tensor, pad: int) -> Tensor:
    """``x_tm`` (B, T, C) with ``pad`` zero steps in front: (B, pad + T, C), contiguous.

    Inside :func:`scratch` and without autograd the result is ``x_tm``'s own padded buffer
    when it has one, else a reused buffer valid until the next call with the same shape.
    """
    buffers = _LOCAL.buffers
    if buffers is None or torch.is_grad_enabled():
        return torch.nn.functional.pad(x_tm, (0, 0, pad, 0))
    base = _halo_base(x_tm, pad)
    if base is not None:
        return base
    batch, length, channels = x_tm.shape
    key = (batch, pad + length, channels, x_tm.dtype, x_tm.device)
    buf = buffers.get(key)
    if buf is None:
        buf = buffers[key] = x_tm.new_zeros(batch, pad + length, channels)
    buf[:, pad:].copy_(x_tm)
    return buf


def zeroed(shape: tuple[int, ...], like: Tensor, dtype: torch.dtype, key: tuple) -> Tensor:
    """A ``shape`` buffer in ``dtype`` on ``like``'s device that is zero wherever callers
    passing ``key`` never write.

    Outside :func:`scratch` (or under autograd) a fresh zero tensor. Inside, the buffer of an
    earlier call with the same ``shape``, ``dtype`` and ``key`` is reused without a fill, so
    every caller with one ``key`` must write the same region each time (what was zero stays
    zero); a buffer something still holds is never handed out again.
    """
    buffers = _LOCAL.buffers
    if buffers is None or torch.is_grad_enabled():
        return like.new_zeros(shape, dtype=dtype)
    full_key = ("zeroed", *key, tuple(shape), dtype, like.device)
    buf = buffers.get(full_key)
    if buf is None or not _unshared(buf):
        buf = buffers[full_key] = like.new_zeros(shape, dtype=dtype)
    return buf
