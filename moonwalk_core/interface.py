"""The layer contract shared by both backends: everything the engines and planners call.

Notation (used in every docstring of the package). A chain network computes
``x_i = f_i(x_{i-1}; theta_i)``; cotangents are row vectors ``h_i = dL/dx_i`` of the same shape
as ``x_i``. For one layer, ``x_in = x_{i-1}``, ``x_out = x_i``, ``h_in = h_{i-1}``,
``h_out = h_i``; ``J`` is the input Jacobian and ``J_theta`` the parameter Jacobian (never
materialized). A *residual* (``res``) is what Phase I keeps for the input vjp only; a
*fragment* (``frag``) is what Phase II stores because ``vijp`` cannot recover it (the part of
``h_out`` in ker Jᵀ, block-boundary values of a sequential solve, or the whole ``h_out``).
docs/method.md explains the phases; docs/layers.md gives every layer's residual, fragment,
vijp and condition estimates.

Contract identities (each is measured by ``check_layer`` and tested for every registered layer
in ``tests/test_layer_contract.py``):

1. ``forward_with_residual(x)[0] == forward(x) ==`` an independent plain-framework forward
2. ``vjp(res, h_out) == h_out · J`` (equals the framework's own vjp)
3. ``vijp(x_in, vjp(res, h_out), fragment(res, h_out)) == h_out``
4. ``fragment(res, h_out) is None`` exactly when J is surjective (with ``block_size=None``)
5. ``<param_vjp(x_in, h_out), δθ> == <h_out, J_theta δθ>`` for every δθ (the framework's jvp)
6. the residual is as small as the layer declares (bit masks, not activations)

Capabilities are class attributes that every final layer class inherits or states; the engines
read them and never test a layer's class or probe its methods. A final class must define
``condition()`` (it is abstract), and must state ``surjective``.

Backend-specific members, besides this protocol: the torch engine reads ``input_halo`` (zero
time steps the layer pads its input with: Note: [scratch buffers] in
``moonwalk_core/torch/_workspace.py``); the JAX engine uses ``param_names``, ``parameters()``,
``with_parameters()`` and ``replace_static(index=...)`` (layers are immutable Equinox modules).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol, TypeVar

__all__ = ["Layer", "TimeBlockLayer", "NegativeUnitsLayer", "ReversibleLayer", "BlockAxis",
           "CAPABILITIES"]

Arr = TypeVar("Arr")
Res = TypeVar("Res")
Frag = TypeVar("Frag")

BlockAxis = Literal["time", "rows"]

CAPABILITIES = ("surjective", "block_axis", "offers_negative_units", "reversible",
                "has_vijp_constants")
"""The capability class attributes, in the order docs/layers.md tabulates them."""


class Layer(Protocol[Arr, Res, Frag]):
    """What every Moonwalk layer provides, in either backend."""

    # -- identity and capabilities (class attributes) ------------------------------------------
    type_name: ClassVar[str]
    """The architecture entry's ``type`` this class builds."""
    variant: ClassVar[str | None]
    """Which variant of the type (``moonwalk_core.arch.VARIANTS``); None for one-class types."""
    surjective: ClassVar[bool]
    """J is surjective for every input: ``fragment`` is None unless a block size is asked for;
    otherwise Phase II stores a fragment (the whole h_out for an expanding layer)."""
    block_axis: ClassVar[BlockAxis | None]
    """The vijp is a sequential solve that ``block_size`` cuts into independently solved blocks,
    each started from a boundary fragment: along "time" (the planner may choose the block size;
    the layer has ``tail`` and ``dilation``) or "rows"; None: ``block_size`` does not apply."""
    offers_negative_units: ClassVar[bool]
    """The layer can store h_out where its vijp would divide by a small slope
    (``negative_units_fragment``; it has ``negative_slope``)."""
    reversible: ClassVar[bool]
    """``inverse(x_out)`` reconstructs ``x_in`` (RevBackprop inverts a prefix of such layers)."""
    has_vijp_constants: ClassVar[bool]
    """``vijp_constants()`` returns weight-only quantities of the vijp (e.g. an inverse tap) that
    an engine may compute ahead and pass to ``vijp``."""
    index: int
    """Position in the model, for error messages (-1 when standalone)."""

    # -- the contract ------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Any, ctx: Any) -> Layer[Arr, Res, Frag]:
        """Build the layer an architecture entry describes (``ctx``: RNG, dtype, init)."""
        ...

    def forward(self, x_in: Arr) -> Arr:
        """``x_out = f(x_in)``: the plain forward."""
        ...

    def forward_with_residual(self, x_in: Arr, *, pack_residuals: bool = True
                              ) -> tuple[Arr, Res]:
        """Phase I: ``(x_out, res)`` with the minimal residual the input vjp needs; sign masks
        are bit-packed when ``pack_residuals`` (an option of the call, never of the layer)."""
        ...

    def vjp(self, res: Res, h_out: Arr) -> Arr:
        """Phase II: ``h_in = h_out · J`` from the residual alone."""
        ...

    def fragment(self, res: Res, h_out: Arr, *, block_size: int | None = None) -> Frag | None:
        """Phase II: the part of ``h_out`` that ``vijp`` cannot recover; None when surjective."""
        ...

    def vijp(self, x_in: Arr, h_in: Arr, frag: Frag | None, constants: Any = None) -> Arr:
        """Phase III: the ``h_out`` with ``h_out · J = h_in`` (plus the fragment); a full
        fragment (a cotangent checkpoint) is returned as it is."""
        ...

    def param_vjp(self, x_in: Arr, h_out: Arr) -> Any:
        """``h_out · J_theta`` at ``x_in``: the parameter gradient, keyed like the parameters."""
        ...

    def forward_and_param_vjp(self, x_in: Arr, h_out: Arr) -> tuple[Arr, Any]:
        """Phase III, fused: ``(f(x_in), h_out · J_theta)`` with one forward pass."""
        ...

    def condition(self) -> dict[str, float]:
        """Cheap condition estimates of the vijp (docs/layers.md); abstract: every final layer
        states its own, so a forgotten one fails loudly instead of planning as exact."""
        ...

    def check_weights(self) -> None:
        """Raise ``ValueError`` when these weights leave the vijp undefined (e.g. a singular
        lag-0 tap). Engines call it once per gradient, before the phases and outside ``jit``."""
        ...

    def invertible_taps(self) -> dict[str, Arr]:
        """The C x C taps the vijp inverts, by the name errors use (the engines check them all
        with one host copy before the phases; none by default)."""
        ...

    def vijp_constants(self) -> Any:
        """Weight-only quantities of the vijp (``has_vijp_constants``), or None."""
        ...


class TimeBlockLayer(Layer[Arr, Res, Frag], Protocol[Arr, Res, Frag]):
    """A layer with ``block_axis == "time"``: the planner may choose its block size."""

    tail: int
    """Later positions one step of the back-substitution reads: (k-1)·d; a boundary fragment
    stores this many steps after each block."""
    dilation: int
    """Block sizes must be multiples of it."""

    def filter_taps(self) -> Arr:
        """The vijp's causal filter as row-vector taps (k, C, C) in descending lag order,
        ``W_{k-1}, ..., W_0`` with ``h_in[s] = sum_l h_out[s + l·d] W_l`` (what the FFT
        solver inverts; docs/method.md)."""
        ...

    def filter_steps(self, length: int, frag: Frag | None) -> int:
        """Steps of the causal filter the FFT solver inverts, for an input whose last axis
        has ``length`` positions (chain steps of a time block; a masked conv2d's row width);
        0 when there is nothing to solve. Masked conv2ds (``block_axis == "rows"``) offer
        :meth:`filter_taps` and this too."""
        ...


class NegativeUnitsLayer(Layer[Arr, Res, Frag], Protocol[Arr, Res, Frag]):
    """A layer with ``offers_negative_units``."""

    negative_slope: float

    def negative_units_fragment(self, res: Res, h_out: Arr) -> Any:
        """Phase II, optional: h_out where the vijp would divide by ``negative_slope``."""
        ...


class ReversibleLayer(Layer[Arr, Res, Frag], Protocol[Arr, Res, Frag]):
    """A layer with ``reversible``."""

    def inverse(self, x_out: Arr) -> Arr:
        """``x_in`` from ``x_out``."""
        ...
