"""``checkpoint_every="auto"``: where Moonwalk stores what, from per-layer condition estimates.

Phase III multiplies the error it carries by about each layer's condition number (SPEC §1
'Error growth'). This module predicts that growth per layer and chooses, with the fewest stored
bytes, (a) each causal conv's block size, so that its back-substitution (growth ρ^steps) stays
bounded, and (b) which layers store their full output cotangent (a checkpoint: Phase III restarts
from exact values) or, for a leaky ReLU, only h_out at its negative units (no division by the
slope), so that the predicted amplification between two restarts stays under tolerance / eps.

# Note: [predicted amplification]
For an error e_in with no preferred direction and a signal h_out with none either, a layer whose
Jacobian has singular values in [σ_min, σ_max] multiplies the *relative* error by
sqrt(mean σ⁻² · mean σ²) ≤ (κ + 1/κ) / 2 (Kantorovich), κ = σ_max / σ_min. For a leaky ReLU
with slope s and half its units negative this is exactly (s + 1/s) / 2 (5.05 for s = 0.1). For
a causal conv, κ is that of its symbol W(ω) = Σ_l W_l e^{-iωl} (the condition of J for long
sequences), times ρ^(steps - 1) over a block of ``steps`` recurrence steps when the companion
matrix's spectral radius ρ exceeds 1. The per-layer worst case κ compounds far faster than
measured errors do; this mean-square estimate tracks them (tests/test_stability.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..methods import DEFAULT_TOLERANCE, Moonwalk
from ._activations import LeakyReLU
from ._causal_conv import CausalConv1d
from ._model import MoonwalkModel
from ._result import LayerPlan

__all__ = ["auto_plan", "layer_growth"]

_BINS = 200  # resolution of the accumulated log-amplification in the plan search
_OVER = 1e30  # cost of a segment whose predicted amplification exceeds the budget


@dataclass(frozen=True)
class _Option:
    """One way to run a layer: bytes it stores, log-growth it adds, and the plan entry."""

    bytes: float
    log_growth: float
    plan: LayerPlan


def layer_growth(condition: dict[str, float], steps: int = 1) -> float:
    """Predicted relative-error amplification of one layer's vijp (Note: [predicted amplification]).

    Args:
        condition: the layer's ``condition()``.
        steps: recurrence steps per block of a sequential solve (ignored without
            "spectral_radius").
    """
    kappa = max(condition.get("symbol_condition", 1.0), condition.get("amplification", 1.0))
    growth = (kappa + 1 / kappa) / 2
    rho = condition.get("spectral_radius", 0.0)
    if rho > 1:
        growth *= rho ** (steps - 1)
    return growth


def _probe(model: MoonwalkModel, x: Tensor) -> tuple[list[torch.Size], list[float]]:
    """Per-example output shapes and, for each layer, the fraction of its inputs <= 0.

    Runs one example forward (cheap next to the batch Moonwalk is about to run).
    """
    shapes, negative = [], []
    with torch.no_grad():
        h = x[:1]
        for layer in model:
            negative.append(float((h <= 0).double().mean()))
            h = layer(h)
            shapes.append(h.shape[1:])
    return shapes, negative


def _options(layer: torch.nn.Module, condition: dict[str, float], out_shape: torch.Size,
             negative: float, batch: int, itemsize: int, method: Moonwalk,
             last: bool) -> list[_Option]:
    """Every choice for one layer: its own fragment (with block sizes for a causal conv),
    a negative-units fragment (leaky ReLU), a checkpoint (not for the last layer)."""
    out_bytes = batch * math.prod(out_shape) * itemsize
    options = []
    if isinstance(layer, CausalConv1d) and layer.tail > 0:
        length, d = out_shape[-1], layer.dilation
        cap = method.block_size if method.block_size is not None else length
        cap_steps = max(1, min(cap, length) // d)
        rho = condition.get("spectral_radius", 0.0)
        steps_set = {cap_steps} if rho <= 1 else {
            s for s in (2 ** j for j in range(cap_steps.bit_length())) if s <= cap_steps
        } | {cap_steps}
        for steps in sorted(steps_set):
            block = steps * d
            n_blocks = -(-length // block)
            frag_bytes = batch * out_shape[0] * (n_blocks - 1) * layer.tail * itemsize
            size = method.block_size if steps == cap_steps and rho <= 1 else block
            growth = layer_growth(condition, steps)
            why = (f"block {block}: ρ={rho:.2f}, predicted amplification {growth:.3g}x"
                   if rho > 1 else f"predicted amplification {growth:.3g}x (ρ={rho:.2f})")
            options.append(_Option(frag_bytes, math.log(growth), LayerPlan(size, reason=why)))
    else:
        growth = layer_growth(condition, out_shape[-1] if len(out_shape) else 1)
        why = f"predicted amplification {growth:.3g}x" if growth > 1 else ""
        options.append(_Option(0.0, math.log(growth), LayerPlan(method.block_size, reason=why)))
    if isinstance(layer, LeakyReLU) and layer.negative_slope < 1:
        why = (f"negative units: stores h_out at the {negative:.0%} negative units instead of "
               f"dividing by the slope {layer.negative_slope:g}")
        options.append(_Option(negative * out_bytes, 0.0,
                                LayerPlan(method.block_size, reason=why, negative_units=True)))
    if not last:
        options.append(_Option(out_bytes, -math.inf, LayerPlan(
            method.block_size, checkpoint=True, reason="checkpoint: restart from exact h_out")))
    return options


def _search(options: list[list[_Option]], log_budget: float) -> list[int]:
    """The option per layer with the fewest bytes whose accumulated log-growth between two
    restarts stays under ``log_budget`` (dynamic programming over discretized growth)."""
    width = log_budget / _BINS
    over = _BINS + 1  # "over budget" state, left only by a checkpoint
    cost: dict[int, float] = {0: 0.0}
    back: list[dict[int, tuple[int, int]]] = []  # per layer: state -> (previous state, option)
    for layer_options in options:
        nxt: dict[int, float] = {}
        step: dict[int, tuple[int, int]] = {}
        for state, spent in cost.items():
            for j, opt in enumerate(layer_options):
                extra = 0.0
                if opt.log_growth == -math.inf:
                    new = 0
                else:  # growth rounds up to whole bins: the search never under-counts
                    new = state + math.ceil(opt.log_growth / width - 1e-9)
                    if new > _BINS:
                        extra, new = (_OVER if state != over else 0.0), over
                total = spent + opt.bytes + extra
                if new not in nxt or total < nxt[new]:
                    nxt[new], step[new] = total, (state, j)
        cost = nxt
        back.append(step)
    state = min(cost, key=cost.__getitem__)
    choice = []
    for step in reversed(back):
        state, j = step[state]
        choice.append(j)
    return choice[::-1]


def auto_plan(model: MoonwalkModel, method: Moonwalk, x: Tensor) -> list[LayerPlan]:
    """Storage plan for ``checkpoint_every="auto"``: block sizes, checkpoints, negative units.

    Keeps the predicted error amplification between two restarts of Phase III under
    ``tolerance / eps(dtype)`` with the fewest stored bytes; each entry's ``reason`` says why.
    ``method.block_size`` caps the block sizes of causal convs.
    """
    dtype_name = str(model.dtype).removeprefix("torch.")
    tol = method.tolerance or DEFAULT_TOLERANCE.get(dtype_name, 1e-4)
    budget = tol / torch.finfo(model.dtype).eps
    shapes, negative = _probe(model, x)
    itemsize = torch.empty((), dtype=model.dtype).element_size()
    options = [
        _options(layer, layer.condition(), shapes[i], negative[i], x.shape[0], itemsize, method,
                 i == len(model) - 1)
        for i, layer in enumerate(model)
    ]
    choice = _search(options, math.log(max(budget, 1.0 + 1e-9)))
    plan, acc = [], 1.0
    for layer_options, j in zip(options, choice, strict=True):
        opt = layer_options[j]
        acc = 1.0 if opt.log_growth == -math.inf else acc * math.exp(opt.log_growth)
        note = f"; {acc:.3g}x since the last restart (budget {budget:.3g})"
        if opt.plan.checkpoint:
            note = f" (budget {budget:.3g} = tolerance {tol:g} / eps)"
        reason = opt.plan.reason + note if opt.plan.reason or acc > budget else ""
        if acc > budget:
            reason += ": over budget, no plan meets the tolerance (use float64)"
        plan.append(LayerPlan(opt.plan.block_size, opt.plan.checkpoint, reason,
                              opt.plan.negative_units))
    return plan
