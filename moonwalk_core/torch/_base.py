"""AbstractLayer: the torch form of :class:`moonwalk_core.interface.Layer`.

Public methods check their arguments and call private hooks; concrete layers override only the
hooks (``_forward``, ``_residual``, ``_vjp``, ``_fragment``, ``_vijp``). The math and the
contract identities are in :mod:`moonwalk_core.interface`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..arch import LayerSpec
from ._containers import FullFragment

__all__ = ["AbstractLayer", "BuildContext"]


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


class AbstractLayer(nn.Module):
    """A Moonwalk layer: an ``nn.Module`` whose ``forward`` is the plain forward.

    Attributes:
        surjective: whether J is surjective for every input (class default; a layer whose
            surjectivity depends on its shapes sets it per instance).
        index: position in the model, for error messages (-1 when standalone).
        input_halo: zero time steps the layer pads its input with; the engine has elementwise
            layers write their outputs with that padding in place.
    """

    surjective: bool = True
    type_name: ClassVar[str] = "layer"
    index: int = -1

    @property
    def input_halo(self) -> int:
        """Zero time steps this layer pads its input with (Note: [scratch buffers])."""
        return 0

    @classmethod
    def from_spec(cls, spec: LayerSpec, ctx: BuildContext) -> AbstractLayer:
        """Build the layer described by ``spec`` with ``ctx``'s RNG, dtype, device and init."""
        raise NotImplementedError

    # -- public template methods ------------------------------------------------------------
    def forward(self, x_in: Tensor) -> Tensor:
        """``x_out = f(x_in)``."""
        return self._forward(x_in)

    def forward_with_residual(self, x_in: Tensor) -> tuple[Tensor, Any]:
        """Phase I: ``(x_out, res)``; ``res`` holds only what :meth:`vjp` needs."""
        x_out = self._forward(x_in)
        return x_out, self._residual(x_in, x_out)

    def vjp(self, res: Any, h_out: Tensor) -> Tensor:
        """Phase II: ``h_in = h_out · J`` from the residual alone."""
        return self._vjp(res, h_out)

    def fragment(self, res: Any, h_out: Tensor, *, block_size: int | None = None) -> Any:
        """Phase II: what :meth:`vijp` cannot recover from ``h_in``; None when J is surjective
        and no block-wise solve is asked for."""
        return self._fragment(res, h_out, block_size)

    def vijp(self, x_in: Tensor, h_in: Tensor, frag: Any) -> Tensor:
        """Phase III: ``h_out`` with ``h_out · J = h_in``, completed by ``frag``."""
        if isinstance(frag, FullFragment):
            return frag.h_out
        if frag is None and not self.surjective:
            raise ValueError(f"layer {self.index} ({self.type_name}): its Jacobian is not "
                             "surjective, so vijp needs the fragment stored in Phase II")
        return self._vijp(x_in, h_in, frag)

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

    def condition(self) -> dict[str, float]:
        """Cheap condition estimates of this layer's vijp (empty when trivially exact)."""
        return {}

    # -- hooks ------------------------------------------------------------------------------
    def _forward(self, x_in: Tensor) -> Tensor:
        raise NotImplementedError

    def _residual(self, x_in: Tensor, x_out: Tensor) -> Any:
        del x_in, x_out
        return None

    def _vjp(self, res: Any, h_out: Tensor) -> Tensor:
        raise NotImplementedError

    def _fragment(self, res: Any, h_out: Tensor, block_size: int | None) -> Any:
        del res, block_size
        return None if self.surjective else FullFragment(h_out)

    def _vijp(self, x_in: Tensor, h_in: Tensor, frag: Any) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"index={self.index}"
