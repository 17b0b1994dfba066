"""Byte accounting from the framework itself: autograd's saved tensors, deduplicated by storage."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["SavedTensorCounter", "count_saved_tensors"]


@dataclass
class SavedTensorCounter:
    """Bytes of distinct storages autograd saved for backward, excluding ``exclude`` (weights)."""

    exclude: set[int] = field(default_factory=set)
    storages: dict[int, int] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def pack(self, t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key not in self.exclude and storage.nbytes() > 0:
            self.storages[key] = storage.nbytes()
        return t


@contextmanager
def count_saved_tensors(exclude: Iterable[Tensor] = ()) -> Iterator[SavedTensorCounter]:
    """Count what autograd saves inside the block (``torch.autograd.graph.saved_tensors_hooks``).

    Tensors sharing a storage count once; storages of ``exclude`` (the parameters, which the
    model holds anyway) are not counted.
    """
    counter = SavedTensorCounter({t.untyped_storage().data_ptr() for t in exclude})
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda t: t):
        yield counter
