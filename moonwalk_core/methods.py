"""Gradient methods: frozen option objects passed as ``method=`` to ``value_and_grad``.

Backend-neutral; each backend maps the option type to its implementation (docs/method.md).
Options are validated here, once, for both backends: sizes and intervals are ints (never
booleans), flags are booleans, tolerances are finite positive floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Backprop",
    "Checkpointed",
    "RevBackprop",
    "NaiveForward",
    "PureForward",
    "Moonwalk",
    "Method",
    "DEFAULT_TOLERANCE",
]

BFLOAT16_EPS = 2.0**-7
"""bfloat16's machine epsilon (8 significand bits): ``torch.finfo(torch.bfloat16).eps``."""

TF32_EPS = 2.0**-10
"""The unit roundoff scale of TF32 products (10 explicit mantissa bits): the epsilon of float32
work on a GPU that allows TF32 (both backends' ``working_epsilon``)."""

DEFAULT_TOLERANCE = {"float32": 1e-4, "float64": 1e-10, "bfloat16": 8 * BFLOAT16_EPS}
"""Moonwalk's tolerance by dtype name when ``Moonwalk(tolerance=None)``. bfloat16's is 8 eps
(0.0625): bfloat16 Backprop's own gradient error is a few eps, so a tolerance of float32's size
could never be met; with it the "auto" planner's amplification budget tolerance / (2 eps) is 4
(docs/method.md, 'bfloat16')."""


SOLVERS = ("auto", "fft", "substitution")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_size(owner: str, name: str, value: Any, *, optional: bool = False) -> None:
    """``value`` must be an int >= 1 (or None when ``optional``); booleans are not sizes."""
    if (optional and value is None) or (_is_int(value) and value >= 1):
        return
    allowed = "None or an int >= 1" if optional else "an int >= 1"
    raise ValueError(f"{owner}({name}={value!r}): use {allowed}")


def _check_flag(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{owner}({name}={value!r}): use True or False")


@dataclass(frozen=True)
class Backprop:
    """Reverse-mode autodiff of the framework: the reference."""


@dataclass(frozen=True)
class Checkpointed:
    """Backprop with activation checkpointing of ``segments`` segments (None: about sqrt(L))."""

    segments: int | None = None

    def __post_init__(self) -> None:
        _check_size("Checkpointed", "segments", self.segments, optional=True)


@dataclass(frozen=True)
class RevBackprop:
    """Reversible backprop: inputs reconstructed from outputs going down (RevNet models only)."""


@dataclass(frozen=True)
class NaiveForward:
    """Every parameter gradient by its own JVP (the 2024 'naive forward'; time quadratic in
    depth).

    Attributes:
        chunk_size: how many tangents one batched JVP evaluates.
        max_parameters: refuse models with more parameters than this (too slow to be useful).
    """

    chunk_size: int = 64
    max_parameters: int = 200_000

    def __post_init__(self) -> None:
        _check_size("NaiveForward", "chunk_size", self.chunk_size)
        _check_size("NaiveForward", "max_parameters", self.max_parameters)


@dataclass(frozen=True)
class PureForward:
    """The 2024 Pure-Forward mode: h_0 by forward mode (one JVP per input dimension), then
    Phase III.

    Attributes:
        chunk_size: how many input-dimension tangents one batched JVP evaluates.
    """

    chunk_size: int = 256

    def __post_init__(self) -> None:
        _check_size("PureForward", "chunk_size", self.chunk_size)


@dataclass(frozen=True)
class Moonwalk:
    """Mixed-mode Moonwalk (docs/method.md): forward, reverse (input vjps only),
    inverse-forward.

    Attributes:
        block_size: block length for block-wise reconstruction of sequential vijps: time steps
            per block for causal 1D convolutions, rows per block for masked 2D convolutions;
            None solves each layer sequentially with no boundary fragments.
        checkpoint_every: store the full output cotangent of every m-th layer in Phase II and
            restart Phase III there (an int m), choose the layers from condition estimates
            ("auto"), or never (None).
        pack_residuals: keep activation sign masks bit-packed (1 bit per element) instead of
            as bool tensors (1 byte per element).
        tolerance: the gradient relative error the caller accepts (a finite float > 0);
            "auto" checkpoints keep the predicted error under it and the self-check is compared
            against it. None uses :data:`DEFAULT_TOLERANCE` for the model's dtype.
        strict: raise instead of warn when the self-check exceeds ``tolerance``.
        solver: how Phase III solves the sequential vijps of causal convolutions:
            "substitution" (back-substitution, one small product per time step), "fft" (the
            inverse filter applied per block by FFT: kernel launches independent of the
            length), or "auto" (FFT on accelerators, where launches dominate; substitution on
            the CPU, where it is faster). docs/method.md, 'The FFT solver'.
    """

    block_size: int | None = None
    checkpoint_every: int | Literal["auto"] | None = None
    pack_residuals: bool = True
    tolerance: float | None = None
    strict: bool = False
    solver: Literal["auto", "fft", "substitution"] = "auto"

    def __post_init__(self) -> None:
        _check_size("Moonwalk", "block_size", self.block_size, optional=True)
        if self.solver not in SOLVERS:
            raise ValueError(f"Moonwalk(solver={self.solver!r}): use one of {SOLVERS}")
        ce = self.checkpoint_every
        if not (ce is None or ce == "auto" or (_is_int(ce) and ce >= 1)):
            raise ValueError(
                f"Moonwalk(checkpoint_every={ce!r}): use None, an int >= 1, or 'auto'"
            )
        tol = self.tolerance
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, int | float)
                                or not math.isfinite(tol) or not tol > 0):
            raise ValueError(f"Moonwalk(tolerance={tol!r}): use None or a finite float > 0")
        _check_flag("Moonwalk", "pack_residuals", self.pack_residuals)
        _check_flag("Moonwalk", "strict", self.strict)

    def solver_for(self, platform: str) -> str:
        """The solver in force on a device of ``platform`` ("cpu", "cuda", "gpu", ...)."""
        if self.solver != "auto":
            return self.solver
        return "substitution" if platform == "cpu" else "fft"

    def tolerance_for(self, dtype: str) -> float:
        """The tolerance in force for a model of ``dtype`` ("float32", "float64", "bfloat16")."""
        if self.tolerance is not None:
            return float(self.tolerance)
        return DEFAULT_TOLERANCE.get(dtype, DEFAULT_TOLERANCE["float32"])


Method = Backprop | Checkpointed | RevBackprop | NaiveForward | PureForward | Moonwalk
