"""Typed residual and fragment containers, bit packing and byte accounting."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .._layer import FullFragment

__all__ = ["SignMask", "FullFragment", "pack_mask", "nbytes"]

_BIT_WEIGHTS: dict[torch.device, Tensor] = {}


def _weights(device: torch.device) -> Tensor:
    if device not in _BIT_WEIGHTS:
        _BIT_WEIGHTS[device] = (2 ** torch.arange(8, device=device)).to(torch.uint8)
    return _BIT_WEIGHTS[device]


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
        byte = torch.arange(256).unsqueeze(-1)
        bit_set = (byte >> torch.arange(8)) & 1 == 1  # bit i of byte b is element 8b + i
        table = torch.where(bit_set, torch.tensor(if_true, dtype=torch.float64),
                            torch.tensor(if_false, dtype=torch.float64))
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
    # eight 0/1 bytes as one int64, folded so that its low byte holds them as bits 0..7
    word = flat.view(torch.int64)
    word = word | (word >> 7)
    word |= word >> 14
    word |= word >> 28
    return SignMask(word.to(torch.uint8), tuple(mask.shape), True, order)


def nbytes(tree: Any) -> int:
    """Bytes held by the tensors in a (nested) container; None and non-tensors count 0."""
    if isinstance(tree, Tensor):
        return tree.numel() * tree.element_size()
    if isinstance(tree, tuple | list):
        return sum(nbytes(t) for t in tree)
    if isinstance(tree, dict):
        return sum(nbytes(t) for t in tree.values())
    return 0
