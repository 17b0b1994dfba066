"""AbstractLayer: the torch form of :class:`moonwalk_core.interface.Layer`.

The template methods are :class:`moonwalk_core._layer.LayerTemplate`'s (both backends share
them); concrete layers override only the hooks (``_forward``, ``_residual``, ``_vjp``,
``_fragment``, ``_vijp``) and state their capabilities as class attributes. docs/layers.md
tabulates the layers.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import Tensor, nn

from .._conditioning import check_invertible
from .._layer import LayerTemplate

__all__ = ["AbstractLayer", "BuildContext", "host"]


class _HostCopies(threading.local):
    count = 0


HOST_COPIES = _HostCopies()
"""How many :func:`host` copies this thread made (each is a host sync on a GPU)."""


def host(t: Tensor) -> np.ndarray:
    """``t`` as a NumPy array on the host, in its own dtype (one explicit device-to-host copy;
    the backend-neutral condition numerics take it from here). NumPy has no bfloat16: those
    values arrive as float32 (exactly: every bfloat16 is a float32)."""
    HOST_COPIES.count += 1
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.to("cpu").numpy()


class BuildContext:
    """Everything a layer's ``from_spec`` needs besides the spec: RNG, dtype, device, init."""

    def __init__(self, generator: torch.Generator, dtype: torch.dtype, device: torch.device,
                 init: str) -> None:
        self.generator, self.dtype, self.device, self.init = generator, dtype, device, init

    def empty(self, *shape: int) -> Tensor:
        return torch.empty(*shape, dtype=self.dtype, device=self.device)

    def normal(self, *shape: int, std: float = 1.0) -> Tensor:
        # drawn in float64 on the CPU so that every dtype and device gets the same numbers
        t = torch.randn(*shape, generator=self.generator, dtype=torch.float64)
        return (t * std).to(dtype=self.dtype, device=self.device)

    def orthogonal(self, rows: int, cols: int) -> Tensor:
        """A (rows, cols) matrix with orthonormal rows or columns (whichever are fewer)."""
        a = torch.randn(max(rows, cols), min(rows, cols), generator=self.generator,
                        dtype=torch.float64)
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))  # Haar-distributed
        q = q if rows >= cols else q.T
        return q.to(dtype=self.dtype, device=self.device)

    def uniform(self, *shape: int, bound: float) -> Tensor:
        t = torch.rand(*shape, generator=self.generator, dtype=torch.float64)
        return ((2 * t - 1) * bound).to(dtype=self.dtype, device=self.device)


class AbstractLayer(LayerTemplate, nn.Module):
    """A Moonwalk layer: an ``nn.Module`` whose ``forward`` is the plain forward.

    The contract's template methods and capabilities come from
    :class:`~moonwalk_core._layer.LayerTemplate`; this class adds the torch parts: the parameter
    vjp by ``torch.func``, and ``input_halo``.

    Attributes:
        index: position in the model, for error messages (-1 when standalone).
    """

    index: int = -1

    def check_weights(self) -> None:
        """Raise ``ValueError`` naming the layer and the tap when a tap of
        :meth:`invertible_taps` is singular or non-finite (one host copy per tap; the engines
        check all layers with one copy, :func:`._phases.check_weights`)."""
        for name, tap in self.invertible_taps().items():
            check_invertible(host(tap), layer=self._name, tap_name=name)

    @property
    def input_halo(self) -> int:
        """Zero time steps this layer pads its input with (Note: [scratch buffers])."""
        return 0

    def forward_and_param_vjp(self, x_in: Tensor, h_out: Tensor
                              ) -> tuple[Tensor, dict[str, Tensor]]:
        """``(f(x_in), h_out · J_theta)`` with one forward pass (Phase III, fused), keyed like
        ``named_parameters()``."""
        params = dict(self.named_parameters())
        if not params:
            return self._forward(x_in), {}

        def f(p: dict[str, Tensor]) -> Tensor:
            return torch.func.functional_call(self, p, (x_in,))

        x_out, pullback = torch.func.vjp(f, params)
        (grads,) = pullback(h_out)
        return x_out, grads

    def extra_repr(self) -> str:
        return f"index={self.index}"
