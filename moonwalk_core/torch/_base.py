"""AbstractLayer: the torch form of :class:`moonwalk_core.interface.Layer`.

Public methods check their arguments and call private hooks; concrete layers override only the
hooks (``_forward``, ``_residual``, ``_vjp``, ``_fragment``, ``_vijp``) and state their
capabilities as class attributes. ``condition``, ``_forward`` and ``_vjp`` are abstract: a final
layer that forgets one cannot be instantiated. The math and the contract identities are in
:mod:`moonwalk_core.interface`; docs/layers.md tabulates the layers.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..arch import LayerSpec
from ..interface import BlockAxis
from ._containers import FullFragment

__all__ = ["AbstractLayer", "BuildContext", "host"]


def host(t: Tensor) -> np.ndarray:
    """``t`` as a NumPy array on the host, in its own dtype (one explicit device-to-host copy;
    the backend-neutral condition numerics take it from here)."""
    return t.detach().to("cpu").numpy()


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


class AbstractLayer(nn.Module, metaclass=abc.ABCMeta):
    """A Moonwalk layer: an ``nn.Module`` whose ``forward`` is the plain forward.

    Class attributes (capabilities, :mod:`moonwalk_core.interface`): ``type_name``,
    ``variant``, ``surjective`` (no default: every final class states it), ``block_axis``,
    ``offers_negative_units``, ``reversible``, ``has_vijp_constants``.

    Attributes:
        index: position in the model, for error messages (-1 when standalone).
    """

    type_name: ClassVar[str]
    variant: ClassVar[str | None] = None
    surjective: ClassVar[bool]
    block_axis: ClassVar[BlockAxis | None] = None
    offers_negative_units: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    has_vijp_constants: ClassVar[bool] = False
    index: int = -1

    @property
    def input_halo(self) -> int:
        """Zero time steps this layer pads its input with (Note: [scratch buffers])."""
        return 0

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> AbstractLayer:
        """Build the layer described by ``spec`` with ``ctx``'s RNG, dtype, device and init."""

    @property
    def _name(self) -> str:
        """The layer as error messages name it."""
        return f"layer {self.index} ({self.type_name})"

    # -- public template methods ------------------------------------------------------------
    def forward(self, x_in: Tensor) -> Tensor:
        """``x_out = f(x_in)``."""
        return self._forward(x_in)

    def forward_with_residual(self, x_in: Tensor, *, pack_residuals: bool = True
                              ) -> tuple[Tensor, Any]:
        """Phase I: ``(x_out, res)``; ``res`` holds only what :meth:`vjp` needs (sign masks
        bit-packed when ``pack_residuals``)."""
        x_out = self._forward(x_in)
        return x_out, self._residual(x_in, x_out, pack_residuals)

    def vjp(self, res: Any, h_out: Tensor) -> Tensor:
        """Phase II: ``h_in = h_out · J`` from the residual alone."""
        return self._vjp(res, h_out)

    def fragment(self, res: Any, h_out: Tensor, *, block_size: int | None = None) -> Any:
        """Phase II: what :meth:`vijp` cannot recover from ``h_in``; None when J is surjective
        and no block-wise solve is asked for."""
        return self._fragment(res, h_out, block_size)

    def vijp(self, x_in: Tensor, h_in: Tensor, frag: Any, constants: Any = None) -> Tensor:
        """Phase III: ``h_out`` with ``h_out · J = h_in``, completed by ``frag``.

        ``constants``: what :meth:`vijp_constants` returned for these weights, when the caller
        computed it ahead; None computes it.
        """
        if isinstance(frag, FullFragment):
            return frag.h_out
        if frag is None and not self.surjective:
            raise ValueError(f"{self._name}: its Jacobian is not surjective, so vijp needs the "
                             "fragment stored in Phase II")
        if self.has_vijp_constants and constants is None:
            constants = self.vijp_constants()
        return self._vijp(x_in, h_in, frag, constants)

    def param_vjp(self, x_in: Tensor, h_out: Tensor) -> dict[str, Tensor]:
        """``h_out · J_theta`` at ``x_in``, keyed like ``named_parameters()``."""
        return self.forward_and_param_vjp(x_in, h_out)[1]

    def forward_and_param_vjp(self, x_in: Tensor, h_out: Tensor
                              ) -> tuple[Tensor, dict[str, Tensor]]:
        """``(f(x_in), h_out · J_theta)`` with one forward pass (Phase III, fused)."""
        params = dict(self.named_parameters())
        if not params:
            return self._forward(x_in), {}

        def f(p: dict[str, Tensor]) -> Tensor:
            return torch.func.functional_call(self, p, (x_in,))

        x_out, pullback = torch.func.vjp(f, params)
        (grads,) = pullback(h_out)
        return x_out, grads

    @abc.abstractmethod
    def condition(self) -> dict[str, float]:
        """Cheap condition estimates of this layer's vijp (docs/layers.md)."""

    def check_weights(self) -> None:
        """Raise ``ValueError`` when these weights leave the vijp undefined; nothing to check
        by default."""

    def vijp_constants(self) -> Any:
        """Weight-only quantities the vijp needs (``has_vijp_constants``), or None."""
        return None

    # -- hooks ------------------------------------------------------------------------------
    @abc.abstractmethod
    def _forward(self, x_in: Tensor) -> Tensor:
        """The plain forward."""

    def _residual(self, x_in: Tensor, x_out: Tensor, pack_residuals: bool) -> Any:
        del x_in, x_out, pack_residuals
        return None

    @abc.abstractmethod
    def _vjp(self, res: Any, h_out: Tensor) -> Tensor:
        """``h_out · J`` from the residual."""

    def _fragment(self, res: Any, h_out: Tensor, block_size: int | None) -> Any:
        del res, block_size
        return None if self.surjective else FullFragment(h_out)

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: Any, constants: Any) -> Tensor:
        """The vijp of a surjective layer (a layer whose fragment is its whole h_out, the
        default of a non-surjective one, never gets here)."""
        raise NotImplementedError(f"{type(self).__name__} has no vijp of its own")

    def extra_repr(self) -> str:
        return f"index={self.index}"
