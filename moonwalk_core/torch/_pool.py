"""Non-overlapping pooling (window = stride = size) on [C, T] or [C, H, W] inputs."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..arch import LayerSpec
from ._base import AbstractLayer, BuildContext

__all__ = ["AvgPool", "MaxPool", "ArgmaxIndex"]


def _windows(x: Tensor, size: int) -> Tensor:
    """(B, C, *spatial) -> (B, C, *spatial // size, size^d): each window's elements last."""
    batch, channels, *spatial = x.shape
    if len(spatial) == 1:
        return x.view(batch, channels, spatial[0] // size, size)
    height, width = spatial
    x = x.view(batch, channels, height // size, size, width // size, size)
    return x.permute(0, 1, 2, 4, 3, 5).reshape(batch, channels, height // size, width // size, -1)


def _unwindows(w: Tensor, size: int) -> Tensor:
    """Inverse of :func:`_windows`."""
    if w.ndim == 4:
        return w.flatten(2)
    batch, channels, rows, cols, _ = w.shape
    w = w.view(batch, channels, rows, cols, size, size).permute(0, 1, 2, 4, 3, 5)
    return w.reshape(batch, channels, rows * size, cols * size)


class _Pool(AbstractLayer):
    """What both pools share: the window size; each window's J row block has orthogonal rows of
    equal norm."""

    surjective = True

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"{type(self).__name__}(size={size!r}): use an int >= 1")
        self.size = size

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> _Pool:
        del ctx
        return cls(spec["size"])

    def condition(self) -> dict[str, float]:
        return {"amplification": 1.0}  # J Jᵀ is a multiple of the identity

    def extra_repr(self) -> str:
        return f"index={self.index}, size={self.size}"


class AvgPool(_Pool):
    """Mean over each window of n = size^d inputs. ``J Jᵀ = I / n``, so the minimum-norm right
    inverse gives ``h_out = n · mean(h_in over the window) = sum(h_in over the window)``."""

    type_name = "avg_pool"

    def _forward(self, x_in: Tensor) -> Tensor:
        return _windows(x_in, self.size).mean(-1)

    def _vjp(self, res: None, h_out: Tensor) -> Tensor:
        del res
        n = self.size ** (h_out.ndim - 2)
        return _unwindows((h_out / n).unsqueeze(-1).expand(*h_out.shape, n), self.size)

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: None, constants: None) -> Tensor:
        del x_in, frag, constants
        return _windows(h_in, self.size).sum(-1)


class ArgmaxIndex(NamedTuple):
    """Where each window's maximum is, as an index inside the window (uint8: size^d <= 256)."""

    index: Tensor


class MaxPool(_Pool):
    """Max over each window (first maximum on ties, as ``torch.max``). J picks one input per
    window, so ``h_out`` is ``h_in`` at the argmax. Residual: the argmax inside each window as
    uint8 (one byte per output element, size^d <= 256); vijp recomputes it from ``x_in``."""

    type_name = "max_pool"

    def _forward(self, x_in: Tensor) -> Tensor:
        return _windows(x_in, self.size).max(-1).values

    def _residual(self, x_in: Tensor, x_out: Tensor, pack_residuals: bool) -> ArgmaxIndex:
        del x_out, pack_residuals
        n = self.size ** (x_in.ndim - 2)
        if n > 256:
            raise ValueError(f"layer {self.index} (max_pool): window of {n} elements does not "
                             "fit a uint8 index; use size^d <= 256")
        return ArgmaxIndex(_windows(x_in, self.size).max(-1).indices.to(torch.uint8))

    def _vjp(self, res: ArgmaxIndex, h_out: Tensor) -> Tensor:
        n = self.size ** (h_out.ndim - 2)
        w = h_out.new_zeros(*h_out.shape, n)
        w.scatter_(-1, res.index.long().unsqueeze(-1), h_out.unsqueeze(-1))
        return _unwindows(w, self.size)

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: None, constants: None) -> Tensor:
        del frag, constants
        index = _windows(x_in, self.size).argmax(-1, keepdim=True)
        return _windows(h_in, self.size).gather(-1, index).squeeze(-1)

