"""Model container, ``build`` from an architecture description, weight export and import."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from .. import arch as arch_module
from .._registry import DTYPE_NAMES, Registry, check_build_options
from .._validation import check_weight_values
from ..arch import ArchSpec
from ._base import AbstractLayer, BuildContext

__all__ = ["MoonwalkModel", "build", "export_weights", "load_weights", "register", "LAYER_CLASSES",
           "REGISTRY"]

REGISTRY = Registry("torch")
LAYER_CLASSES: dict[str, dict[str | None, type]] = REGISTRY.classes
"""``{type_name: {variant: class}}``: what ``build`` can make (``moonwalk_core.arch.VARIANTS``)."""
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def register(cls: type[AbstractLayer]) -> type[AbstractLayer]:
    """Make ``cls`` buildable from architecture entries of type ``cls.type_name`` and variant
    ``cls.variant``."""
    return REGISTRY.register(cls)


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
            raise ValueError(f"dtype={dtype} is not supported; use one of {DTYPE_NAMES}")
        return dtype
    check_build_options("orthogonal", dtype)
    return DTYPES[dtype]


def build(spec: ArchSpec | Mapping[str, Any] | str | Path, seed: int = 0,
          dtype: str | torch.dtype = "float32", *, device: str | torch.device = "cpu",
          init: Literal["orthogonal", "default"] = "orthogonal") -> MoonwalkModel:
    """Build the model an architecture describes.

    Args:
        spec: an :class:`ArchSpec`, or anything :func:`moonwalk_core.arch.load` accepts.
        seed: seeds the weights (the same seed gives the same weights on every device).
        dtype: "float32", "float64" or "bfloat16" (docs/method.md, 'bfloat16').
        device: where the parameters live.
        init: "orthogonal" (default; well-conditioned: orthogonal dense weights, orthogonal
            lag-0 conv taps with small other taps) or "default" (the framework's own init,
            badly conditioned for Moonwalk: docs/method.md, 'Error growth').
    """
    if not isinstance(spec, ArchSpec):
        spec = arch_module.load(spec)
    check_build_options(init)
    ctx = BuildContext(torch.Generator().manual_seed(seed), _dtype(dtype), torch.device(device),
                       init)
    layers = [REGISTRY.lookup(ls).from_spec(ls, ctx) for ls in spec.layers]
    return MoonwalkModel(layers, spec)


def export_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """All parameters as NumPy arrays, keyed like ``named_parameters()`` (both backends)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.named_parameters()}


def _describe(value: Tensor | np.ndarray) -> tuple[tuple[int, ...], str, bool]:
    """(shape, dtype name, floating point?) of a weight value."""
    if isinstance(value, Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return tuple(value.shape), dtype, value.is_floating_point()
    return value.shape, str(value.dtype), bool(np.issubdtype(value.dtype, np.floating))


def load_weights(model: nn.Module, weights: Mapping[str, Any]) -> nn.Module:
    """Copy ``weights`` (NumPy arrays or tensors, keys as :func:`export_weights`) in place.

    All or nothing: every key, shape and dtype is checked before the first parameter is written.

    Raises:
        ValueError: on a missing or unexpected key, a shape mismatch or a value that is not
            floating point; the model is then unchanged.
    """
    params = dict(model.named_parameters())
    values = {k: v if isinstance(v, Tensor) else np.asarray(v) for k, v in weights.items()}
    check_weight_values({k: tuple(p.shape) for k, p in params.items()},
                        {k: _describe(v) for k, v in values.items()})
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(torch.as_tensor(values[name]).to(dtype=p.dtype, device=p.device))
    return model
