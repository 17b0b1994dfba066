"""Typed residual and fragment containers, bit packing and byte accounting."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .._layer import FullFragment

__all__ = ["SignMask", "FullFragment", "DataSize", "pack_mask", "nbytes", "resolve_sizes"]

_BIT_WEIGHTS: dict[torch.device, Tensor] = {}
_GATHER_BITS = 0x0102040810204080


def _weights(device: torch.device) -> Tensor:
    if device not in _BIT_WEIGHTS:
        _BIT_WEIGHTS[device] = (2 ** torch.arange(8, device=device)).to(torch.uint8)
    return _BIT_WEIGHTS[device]


class DataSize:
    """A size Phase I computes on the device and Phase II needs on the host (how many units a
    ReLU zeroed, hence its fragment's length).

    # Note: [sizes from data]
    A fragment whose length depends on the data (``masked_select``) makes the host wait for
    the device once per layer. Instead, Phase I keeps each such size as a device tensor, and
    the engine copies them all to the host in one transfer after Phase I
    (:func:`resolve_sizes`); Phase II then gathers with that static size
    (``nonzero_static`` + ``take``), with no further sync. An unresolved size (a layer used
    on its own) falls back to ``masked_select``.
    """

    __slots__ = ("tensor", "value")

    def __init__(self, tensor: Tensor) -> None:
        self.tensor, self.value = tensor, None

    def __repr__(self) -> str:
        return f"DataSize({self.value if self.value is not None else 'unresolved'})"


def resolve_sizes(residuals: list[Any]) -> int:
    """Copy every :class:`DataSize` in ``residuals`` to the host in one transfer; returns how
    many were resolved."""
    from ._base import host

    sizes = [item for res in residuals if isinstance(res, tuple)
             for item in res if isinstance(item, DataSize) and item.value is None]
    if sizes:
        values = host(torch.stack([size.tensor for size in sizes])).tolist()
        for size, value in zip(sizes, values, strict=True):
            size.value, size.tensor = int(value), None
    return len(sizes)


class SignMask(NamedTuple):
    """A boolean mask of an activation's shape, bit-packed (1 bit per element) or as bools.

    An elementwise activation's vjp needs only which branch each element took, never x_in
    (Note: [why residuals are masks] in :mod:`moonwalk_core._layer`).

    Bits follow the mask's memory order, ``order`` (outermost dimension first), so that a
    time-major activation (Note: [time-major activations]) is packed and unpacked without a
    transposing copy; :meth:`unpack` and :meth:`factor` return tensors laid out the same way.
    """

    bits: Tensor
    shape: tuple[int, ...]
    packed: bool
    order: tuple[int, ...] | None = None

    def _logical(self, stored: Tensor) -> Tensor:
        """A flat tensor in memory order, viewed with the mask's shape and layout."""
        order = self.order or tuple(range(len(self.shape)))
        view = stored[: math.prod(self.shape)].view([self.shape[d] for d in order])
        return view.permute([order.index(d) for d in range(len(order))])

    def unpack(self) -> Tensor:
        """The mask as a bool tensor of ``shape``."""
        if not self.packed:
            return self.bits
        w = _weights(self.bits.device)
        return self._logical((self.bits.unsqueeze(-1) & w).ne(0).reshape(-1))

    def factor(self, if_true: float, if_false: float, like: Tensor) -> Tensor:
        """``if_true`` where the mask is set and ``if_false`` elsewhere, shaped and typed like
        ``like`` (a packed mask decodes 8 elements per byte through a 256-row lookup table)."""
        if not self.packed:
            return torch.addcmul(like.new_full((), if_false), self.bits.to(like.dtype),
                                 like.new_full((), if_true - if_false))
        table = _factor_table(if_true, if_false, like.dtype, like.device)
        return self._logical(F.embedding(self.bits.long(), table).view(-1))


_FACTOR_TABLES: dict[tuple[float, float, torch.dtype, torch.device], Tensor] = {}


def _factor_table(if_true: float, if_false: float, dtype: torch.dtype,
                  device: torch.device) -> Tensor:
    key = (if_true, if_false, dtype, device)
    if key not in _FACTOR_TABLES:
        # built on the host (explicitly: never on a default device), then copied once
        byte = torch.arange(256, device="cpu").unsqueeze(-1)
        bit_set = (byte >> torch.arange(8, device="cpu")) & 1 == 1  # bit i of byte b: 8b + i
        table = torch.where(bit_set, torch.tensor(if_true, dtype=torch.float64, device="cpu"),
                            torch.tensor(if_false, dtype=torch.float64, device="cpu"))
        _FACTOR_TABLES[key] = table.to(dtype=dtype, device=device)
    return _FACTOR_TABLES[key]


def _memory_order(t: Tensor) -> tuple[int, ...]:
    """Dimensions of ``t`` from outermost to innermost in memory (identity if not dense)."""
    order = tuple(sorted(range(t.ndim), key=lambda d: -t.stride(d)))
    return order if t.permute(order).is_contiguous() else tuple(range(t.ndim))


def pack_mask(mask: Tensor, packed: bool) -> SignMask:
    """Wrap a bool mask, packing 8 elements per byte (in memory order) when ``packed``."""
    if not packed:
        return SignMask(mask, tuple(mask.shape), False)
    order = _memory_order(mask)
    flat = mask.permute(order).reshape(-1).view(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad or flat.storage_offset() % 8:
        flat = F.pad(flat, (0, pad))
    # eight 0/1 bytes b_0..b_7 as one int64 w = sum_i b_i 2^(8i); w * sum_{j=1..8} 2^(7j) puts
    # b_i at bit 56 + i (the terms 7(i+j) + i never collide, so nothing carries into the top
    # byte), so the top byte (byte 7, little-endian) holds the eight bits: one product and one
    # strided copy
    word = flat.view(torch.int64) * _GATHER_BITS
    packed = word.view(torch.uint8)[7::8].contiguous()
    return SignMask(packed, tuple(mask.shape), True, order)


def nbytes(tree: Any) -> int:
    """Bytes held by the tensors in a (nested) container; None and non-tensors count 0."""
    if isinstance(tree, Tensor):
        return tree.numel() * tree.element_size()
    if isinstance(tree, tuple | list):
        return sum(nbytes(t) for t in tree)
    if isinstance(tree, dict):
        return sum(nbytes(t) for t in tree.values())
    return 0
