"""The layer contract shared by both backends (SPEC §1-§2).

Notation (used in every docstring of the package). A chain network computes
``x_i = f_i(x_{i-1}; theta_i)``; cotangents are row vectors ``h_i = dL/dx_i`` of the same shape
as ``x_i``. For one layer, ``x_in = x_{i-1}``, ``x_out = x_i``, ``h_in = h_{i-1}``,
``h_out = h_i``; ``J`` is the input Jacobian and ``J_theta`` the parameter Jacobian (never
materialized). A *residual* (``res``) is what Phase I keeps for the input vjp only; a
*fragment* (``frag``) is what Phase II stores because ``vijp`` cannot recover it (the part of
``h_out`` in ker Jᵀ, block-boundary values of a sequential solve, or the whole ``h_out``).

Contract identities (each is a test in ``tests/test_layer_contract.py``):

1. ``forward_with_residual(x)[0] == forward(x)``
2. ``vjp(res, h_out) == h_out · J`` (equals the framework's own vjp)
3. ``vijp(x_in, vjp(res, h_out), fragment(res, h_out)) == h_out``
4. ``fragment(res, h_out) is None`` exactly when J is surjective (with ``block_size=None``)
5. ``param_vjp(x_in, h_out) == h_out · J_theta`` (equals the framework's parameter gradient)
6. the residual is as small as the layer declares (bit masks, not activations)
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

__all__ = ["Layer"]

Arr = TypeVar("Arr")
Res = TypeVar("Res")
Frag = TypeVar("Frag")


class Layer(Protocol[Arr, Res, Frag]):
    """What every Moonwalk layer provides, in either backend."""

    surjective: bool
    """True when J is surjective for every input (no fragment needed with sequential solves)."""

    def forward(self, x_in: Arr) -> Arr:
        """``x_out = f(x_in)``: the plain forward."""
        ...

    def forward_with_residual(self, x_in: Arr) -> tuple[Arr, Res]:
        """Phase I: ``(x_out, res)`` with the minimal residual the input vjp needs."""
        ...

    def vjp(self, res: Res, h_out: Arr) -> Arr:
        """Phase II: ``h_in = h_out · J`` from the residual alone."""
        ...

    def fragment(self, res: Res, h_out: Arr, *, block_size: int | None = None) -> Frag | None:
        """Phase II: the part of ``h_out`` that ``vijp`` cannot recover; None when surjective."""
        ...

    def vijp(self, x_in: Arr, h_in: Arr, frag: Frag | None) -> Arr:
        """Phase III: the ``h_out`` with ``h_out · J = h_in`` (plus the fragment)."""
        ...

    def param_vjp(self, x_in: Arr, h_out: Arr) -> Any:
        """``h_out · J_theta`` at ``x_in``: the parameter gradient."""
        ...
