"""The template both backends' ``AbstractLayer`` inherit: the contract's public methods, written
once (:mod:`moonwalk_core.interface`, docs/layers.md).

Public methods check their arguments and call private hooks; a concrete layer overrides only the
hooks (``_forward``, ``_residual``, ``_vjp``, ``_fragment``, ``_vijp``) and states its
capabilities as class attributes. ``condition``, ``_forward``, ``_vjp`` and ``from_spec`` are
abstract: a final layer class that forgets one cannot be instantiated. Each backend adds what is
framework-specific: the parameter vjp, parameters, devices, ``__call__``.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, NamedTuple

from .interface import BlockAxis

__all__ = ["LayerTemplate", "FullFragment"]


class FullFragment(NamedTuple):
    """The whole output cotangent, stored in Phase II (an expanding layer or a checkpoint).

    A named tuple is a pytree in JAX and a plain container in torch, so both backends use this
    one class."""

    h_out: Any


class LayerTemplate(abc.ABC):
    """The template methods of the layer contract (both backends).

    Class attributes (capabilities): ``type_name``, ``variant``, ``surjective`` (no default:
    every final class states it), ``block_axis``, ``offers_negative_units``, ``reversible``,
    ``has_vijp_constants``.
    """

    type_name: ClassVar[str]
    variant: ClassVar[str | None] = None
    surjective: ClassVar[bool]
    block_axis: ClassVar[BlockAxis | None] = None
    offers_negative_units: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    has_vijp_constants: ClassVar[bool] = False
    index: int

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, spec: Any, ctx: Any) -> LayerTemplate:
        """Build the layer an architecture entry describes with ``ctx``'s RNG, dtype, init."""

    @property
    def _name(self) -> str:
        """The layer as error messages name it."""
        return f"layer {self.index} ({self.type_name})"

    # -- public template methods ------------------------------------------------------------
    def forward(self, x_in: Any) -> Any:
        """``x_out = f(x_in)``."""
        return self._forward(x_in)

    def forward_with_residual(self, x_in: Any, *, pack_residuals: bool = True
                              ) -> tuple[Any, Any]:
        """Phase I: ``(x_out, res)``; ``res`` holds only what :meth:`vjp` needs (sign masks
        bit-packed when ``pack_residuals``)."""
        x_out = self._forward(x_in)
        return x_out, self._residual(x_in, x_out, pack_residuals)

    def vjp(self, res: Any, h_out: Any) -> Any:
        """Phase II: ``h_in = h_out · J`` from the residual alone."""
        return self._vjp(res, h_out)

    def fragment(self, res: Any, h_out: Any, *, block_size: int | None = None) -> Any:
        """Phase II: what :meth:`vijp` cannot recover from ``h_in``; None when J is surjective
        and no block-wise solve is asked for."""
        return self._fragment(res, h_out, block_size)

    def vijp(self, x_in: Any, h_in: Any, frag: Any, constants: Any = None) -> Any:
        """Phase III: ``h_out`` with ``h_out · J = h_in``, completed by ``frag``; a full
        fragment (a cotangent checkpoint, or an expanding layer's) is ``h_out`` itself.

        ``constants``: what :meth:`vijp_constants` returned for these weights, when the caller
        computed it ahead; None computes it here.
        """
        if isinstance(frag, FullFragment):
            return frag.h_out
        if frag is None and not self.surjective:
            raise ValueError(f"{self._name}: its Jacobian is not surjective, so vijp needs the "
                             "fragment stored in Phase II")
        if self.has_vijp_constants and constants is None:
            constants = self.vijp_constants()
        return self._vijp(x_in, h_in, frag, constants)

    def param_vjp(self, x_in: Any, h_out: Any) -> dict[str, Any]:
        """``h_out · J_theta`` at ``x_in``, keyed like the layer's parameters."""
        return self.forward_and_param_vjp(x_in, h_out)[1]

    @abc.abstractmethod
    def forward_and_param_vjp(self, x_in: Any, h_out: Any) -> tuple[Any, dict[str, Any]]:
        """``(f(x_in), h_out · J_theta)`` with one forward pass (Phase III, fused)."""

    @abc.abstractmethod
    def condition(self) -> dict[str, float]:
        """Cheap condition estimates of this layer's vijp (docs/layers.md), from concrete
        weights."""

    def check_weights(self) -> None:
        """Raise ``ValueError`` when these weights leave the vijp undefined (e.g. a singular
        tap); nothing to check by default. Engines call it once per gradient, before the phases
        and outside ``jit``."""
        return None

    def invertible_taps(self) -> dict[str, Any]:
        """The C x C taps the vijp inverts, by the name errors use; none by default."""
        return {}

    def vijp_constants(self) -> Any:
        """Weight-only quantities the vijp needs (``has_vijp_constants``), or None.

        # Note: [vijp constants]
        Small factorizations are slow per call on XLA's CPU backend (~2 ms for a 64 x 64
        inverse); the JAX engine computes them for a whole run in one batched call, outside the
        Phase III scan, and passes them to :meth:`vijp`. They are also what a per-weight-version
        cache would keep.
        """
        return None

    # -- hooks ------------------------------------------------------------------------------
    @abc.abstractmethod
    def _forward(self, x_in: Any) -> Any:
        """The plain forward."""

    def _residual(self, x_in: Any, x_out: Any, pack_residuals: bool) -> Any:
        """What Phase I keeps for the input vjp: nothing by default (a linear layer's vjp needs
        only its weights).

        # Note: [why residuals are masks]
        An elementwise activation's vjp needs only which branch each element took, never x_in:
        one bit per element (``pack_residuals``) instead of a whole activation. The same holds
        for the hidden activations inside a RevNet coupling's branches.
        """
        del x_in, x_out, pack_residuals
        return None

    @abc.abstractmethod
    def _vjp(self, res: Any, h_out: Any) -> Any:
        """``h_out · J`` from the residual."""

    def _fragment(self, res: Any, h_out: Any, block_size: int | None) -> Any:
        del res, block_size
        return None if self.surjective else FullFragment(h_out)

    def _vijp(self, x_in: Any, h_in: Any, frag: Any, constants: Any) -> Any:
        """The vijp of a surjective layer (a layer whose fragment is its whole h_out, the
        default of a non-surjective one, never gets here)."""
        raise NotImplementedError(f"{type(self).__name__} has no vijp of its own")
