"""Typed residual and fragment containers, bit packing and byte accounting."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SignMask", "FullFragment", "pack_mask", "nbytes"]

_BIT_WEIGHTS: dict[torch.device, Tensor] = {}


def _weights(device: torch.device) -> Tensor:
    if device not in _BIT_WEIGHTS:
        _BIT_WEIGHTS[device] = (2 ** torch.arange(8, device=device)).to(torch.uint8)
    return _BIT_WEIGHTS[device]


class SignMask(NamedTuple):
    """A boolean mask of an activation's shape, bit-packed (1 bit per element) or as bools.

    # Note: [why residuals are masks]
    An elementwise activation's vjp needs only which branch each element took, never x_in.
    """

    bits: Tensor
    shape: tuple[int, ...]
    packed: bool

    def unpack(self) -> Tensor:
        """The mask as a bool tensor of ``shape``."""
        if not self.packed:
            return self.bits
        n = 1
        for s in self.shape:
            n *= s
        w = _weights(self.bits.device)
        flat = (self.bits.unsqueeze(-1) & w).ne(0).reshape(-1)
        return flat[:n].reshape(self.shape)


    def factor(self, if_true: float, if_false: float, like: Tensor) -> Tensor:
        """``if_true`` where the mask is set and ``if_false`` elsewhere, shaped and typed like
        ``like`` (a packed mask decodes 8 elements per byte through a 256-row lookup table)."""
        if not self.packed:
            return torch.addcmul(like.new_full((), if_false), self.bits.to(like.dtype),
                                 like.new_full((), if_true - if_false))
        table = _factor_table(if_true, if_false, like.dtype, like.device)
        flat = F.embedding(self.bits.long(), table).view(-1)
        return flat[: like.numel()].view(like.shape)


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


def pack_mask(mask: Tensor, packed: bool) -> SignMask:
    """Wrap a bool mask, packing 8 elements per byte when ``packed``."""
    if not packed:
        return SignMask(mask, tuple(mask.shape), False)
    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.nn.functional.pad(flat, (0, pad))
    bits = (flat.view(-1, 8) * _weights(mask.device)).sum(-1, dtype=torch.uint8)
    return SignMask(bits, tuple(mask.shape), True)


class FullFragment(NamedTuple):
    """The whole output cotangent, stored in Phase II (an expanding layer or a checkpoint)."""

    h_out: Tensor


def nbytes(tree: Any) -> int:
    """Bytes held by the tensors in a (nested) container; None and non-tensors count 0."""
    if isinstance(tree, Tensor):
        return tree.numel() * tree.element_size()
    if isinstance(tree, tuple | list):
        return sum(nbytes(t) for t in tree)
    if isinstance(tree, dict):
        return sum(nbytes(t) for t in tree.values())
    return 0
