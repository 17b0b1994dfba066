"""Gradient methods: frozen option objects passed as ``method=`` to ``value_and_grad``.

Backend-neutral. Each backend dispatches on the type (SPEC §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Backprop",
    "Checkpointed",
    "RevBackprop",
    "NaiveForward",
    "PureForward",
    "Moonwalk",
    "Method",
]


@dataclass(frozen=True)
class Backprop:
    """Reverse-mode autodiff of the framework: the reference."""


@dataclass(frozen=True)
class Checkpointed:
    """Backprop with activation checkpointing of ``segments`` segments (None: about sqrt(L))."""

    segments: int | None = None

    def __post_init__(self) -> None:
        if self.segments is not None and self.segments < 1:
            raise ValueError(f"Checkpointed(segments={self.segments!r}): use None or an int >= 1")


@dataclass(frozen=True)
class RevBackprop:
    """Reversible backprop: inputs reconstructed from outputs going down (RevNet models only)."""


@dataclass(frozen=True)
class NaiveForward:
    """Every parameter gradient by its own JVP (v1 'naive forward'; time quadratic in depth).

    Attributes:
        chunk_size: how many tangents one batched JVP evaluates.
        max_parameters: refuse models with more parameters than this (too slow to be useful).
    """

    chunk_size: int = 64
    max_parameters: int = 200_000


@dataclass(frozen=True)
class PureForward:
    """v1 Pure-Forward: h_0 by forward mode (one JVP per input dimension), then Phase III.

    Attributes:
        chunk_size: how many input-dimension tangents one batched JVP evaluates.
    """

    chunk_size: int = 256


@dataclass(frozen=True)
class Moonwalk:
    """Mixed-mode Moonwalk (SPEC §1): forward, reverse (input vjps only), inverse-forward.

    Attributes:
        block_size: block length for block-wise reconstruction of sequential vijps: time steps
            per block for causal 1D convolutions, rows per block for masked 2D convolutions;
            None solves each layer sequentially with no boundary fragments.
        checkpoint_every: store the full output cotangent of every m-th layer in Phase II and
            restart Phase III there (an int m), choose the layers from condition estimates
            ("auto"), or never (None).
        pack_residuals: keep activation sign masks bit-packed (1 bit per element) instead of
            as bool tensors (1 byte per element).
        tolerance: the gradient relative error the caller accepts; "auto" checkpoints keep the
            predicted error under it and the self-check is compared against it. None uses a
            default by dtype (1e-4 for float32, 1e-10 for float64).
        strict: raise instead of warn when the self-check exceeds ``tolerance``.
    """

    block_size: int | None = None
    checkpoint_every: int | Literal["auto"] | None = None
    pack_residuals: bool = True
    tolerance: float | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        if self.block_size is not None and (
            not isinstance(self.block_size, int) or self.block_size < 1
        ):
            raise ValueError(f"Moonwalk(block_size={self.block_size!r}): use None or an int >= 1")
        ce = self.checkpoint_every
        if not (ce is None or ce == "auto" or (isinstance(ce, int) and ce >= 1)):
            raise ValueError(
                f"Moonwalk(checkpoint_every={ce!r}): use None, an int >= 1, or 'auto'"
            )
        if self.tolerance is not None and not self.tolerance > 0:
            raise ValueError(f"Moonwalk(tolerance={self.tolerance!r}): use None or a float > 0")


Method = Backprop | Checkpointed | RevBackprop | NaiveForward | PureForward | Moonwalk

DEFAULT_TOLERANCE = {"float32": 1e-4, "float64": 1e-10}
