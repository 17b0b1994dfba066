"""Model container, ``build`` from an architecture description, weight export and import."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from .. import arch as arch_module
from ..arch import ArchSpec
from ._base import AbstractLayer, BuildContext

__all__ = ["MoonwalkModel", "build", "export_weights", "load_weights", "register", "LAYER_CLASSES"]

LAYER_CLASSES: dict[str, type[AbstractLayer]] = {}
INITS = ("orthogonal", "default")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def register(cls: type[AbstractLayer]) -> type[AbstractLayer]:
    """Make ``cls`` buildable from architecture entries of type ``cls.type_name``."""
    LAYER_CLASSES[cls.type_name] = cls
    return cls


class MoonwalkModel(nn.Module):
    """A chain of Moonwalk layers; ``forward`` is the plain forward (autograd works as usual)."""

    def __init__(self, layers: list[AbstractLayer], spec: ArchSpec | None = None) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            layer.index = i
        self.layers = nn.ModuleList(layers)
        self.spec = spec

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __iter__(self) -> Iterator[AbstractLayer]:
        return iter(self.layers)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def dtype(self) -> torch.dtype:
        p = next(self.parameters(), None)
        return p.dtype if p is not None else torch.get_default_dtype()

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype={dtype} is not supported; use 'float32' or 'float64'")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; use 'float32' or 'float64'")
    return DTYPES[dtype]


def build(spec: ArchSpec | Mapping[str, Any] | str | Path, seed: int = 0,
          dtype: str | torch.dtype = "float32", *, device: str | torch.device = "cpu",
          init: Literal["orthogonal", "default"] = "orthogonal") -> MoonwalkModel:
    """Build the model an architecture describes.

    Args:
        spec: an :class:`ArchSpec`, or anything :func:`moonwalk_core.arch.load` accepts.
        seed: seeds the weights (the same seed gives the same weights on every device).
        dtype: "float32" or "float64".
        device: where the parameters live.
        init: "orthogonal" (default; well-conditioned: orthogonal dense weights, orthogonal
            lag-0 conv taps with small other taps) or "default" (the framework's own init,
            badly conditioned for Moonwalk: SPEC §1 'Error growth').
    """
    if not isinstance(spec, ArchSpec):
        spec = arch_module.load(spec)
    if init not in INITS:
        raise ValueError(f"init={init!r} is not supported; use one of {INITS}")
    ctx = BuildContext(torch.Generator().manual_seed(seed), _dtype(dtype), torch.device(device),
                       init)
    layers = []
    for ls in spec.layers:
        if ls.type not in LAYER_CLASSES:
            raise ValueError(f"layer {ls.index} ({ls.type}): the torch backend has no such layer; "
                             f"available: {sorted(LAYER_CLASSES)}")
        layers.append(LAYER_CLASSES[ls.type].from_spec(ls, ctx))
    return MoonwalkModel(layers, spec)


def export_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """All parameters as NumPy arrays, keyed like ``named_parameters()`` (both backends)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.named_parameters()}


def load_weights(model: nn.Module, weights: Mapping[str, Any]) -> nn.Module:
    """Copy ``weights`` (NumPy arrays or tensors, keys as :func:`export_weights`) in place.

    Raises:
        ValueError: on a missing or unexpected key or a shape mismatch.
    """
    params = dict(model.named_parameters())
    missing, unexpected = set(params) - set(weights), set(weights) - set(params)
    if missing or unexpected:
        raise ValueError(f"load_weights: missing keys {sorted(missing)}, "
                         f"unexpected keys {sorted(unexpected)}")
    with torch.no_grad():
        for name, p in params.items():
            value = torch.as_tensor(np.asarray(weights[name]))
            if tuple(value.shape) != tuple(p.shape):
                raise ValueError(f"load_weights: {name} has shape {tuple(value.shape)}, "
                                 f"the model expects {tuple(p.shape)}")
            p.copy_(value.to(dtype=p.dtype, device=p.device))
    return model
