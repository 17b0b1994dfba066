"""Backend-neutral core of ``checkpoint_every="auto"`` (docs/method.md, 'Error growth').

Each backend's ``_stability.auto_plan`` describes its layers with :func:`layer_facts`
(condition estimates, output shape, what the layer could store) and :func:`choose` turns them
into the :class:`~moonwalk_core._plan.LayerPlan` list both engines follow.

# Note: [predicted amplification]
For an error e_in with no preferred direction and a signal h_out with none either, a layer whose
Jacobian has singular values in [σ_min, σ_max] multiplies the *relative* error by
sqrt(mean σ⁻² · mean σ²) ≤ (κ + 1/κ) / 2 (Kantorovich), κ = σ_max / σ_min. For a leaky ReLU
with slope s and half its units negative this is exactly (s + 1/s) / 2 (5.05 for s = 0.1). For
a causal conv, κ is that of its symbol W(ω) = Σ_l W_l e^{-iωl} (the condition of J for long
sequences), times ρ^(steps - 1) over a block of ``steps`` recurrence steps when the companion
matrix's spectral radius ρ exceeds 1. The per-layer worst case κ compounds far faster than
measured errors do; this mean-square estimate tracks them within a small factor, on the safe
side (tests/test_stability.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._conditioning import symbol_condition
from ._plan import LayerPlan

__all__ = ["LayerFacts", "choose", "layer_facts", "layer_growth", "symbol_condition"]

_BINS = 200  # resolution of the accumulated log-amplification in the search
MARGIN = 2.0
"""Budget = tolerance / (MARGIN · eps). The prediction tracks the cotangent error at the end of
a segment closely (the self-check measures that error, at every restart), so without a margin
a plan would sit right at the tolerance and the self-check could warn on nets a little less
benign than predicted."""
_OVER = 1e30  # cost of a segment whose predicted amplification exceeds the budget


@dataclass(frozen=True)
class LayerFacts:
    """What the planner needs to know about one layer.

    Attributes:
        condition: the layer's ``condition()``.
        out_shape: per-example output shape.
        causal_tail: (k-1)·d for a causal conv whose block size may be chosen; 0 otherwise.
        dilation: the causal conv's dilation (block sizes are multiples of it).
        negative_slope: a leaky ReLU's slope (it may store its negative units); else None.
        negative_fraction: fraction of the layer's inputs <= 0 (cost of that fragment).
    """

    condition: dict[str, float]
    out_shape: tuple[int, ...]
    causal_tail: int = 0
    dilation: int = 1
    negative_slope: float | None = None
    negative_fraction: float = 0.5


def layer_facts(layer: Any, condition: dict[str, float], out_shape: tuple[int, ...],
                negative_fraction: float = 0.5) -> LayerFacts:
    """The :class:`LayerFacts` of a layer of either backend, from its declared capabilities
    (docs/layers.md): a layer with ``block_axis == "time"`` lets the planner choose its block
    size (it has ``tail`` and ``dilation``); one with ``offers_negative_units`` may store its
    negative units (it has ``negative_slope``).
    """
    time_blocks = layer.block_axis == "time"
    return LayerFacts(condition, tuple(out_shape),
                      causal_tail=layer.tail if time_blocks else 0,
                      dilation=layer.dilation if time_blocks else 1,
                      negative_slope=layer.negative_slope if layer.offers_negative_units else None,
                      negative_fraction=negative_fraction)


def layer_growth(condition: dict[str, float], steps: int = 1) -> float:
    """Predicted relative-error amplification of one vijp (Note: [predicted amplification]).

    Args:
        condition: the layer's ``condition()``.
        steps: recurrence steps per block of a sequential solve (used with "spectral_radius").
    """
    kappa = max(condition.get("symbol_condition", 1.0), condition.get("amplification", 1.0))
    growth = (kappa + 1 / kappa) / 2
    rho = condition.get("spectral_radius", 0.0)
    if rho > 1:
        growth *= rho ** (steps - 1)
    return growth


def _options(f: LayerFacts, batch: int, itemsize: int, block_size: int | None, last: bool,
             negative_units: bool, detailed: bool) -> list[LayerPlan]:
    """Every choice for one layer: its own fragment (with block sizes for a causal conv), a
    negative-units fragment (leaky ReLU), a checkpoint (never the last layer: the final
    self-check needs the reconstructed h_L)."""
    out_bytes = batch * math.prod(f.out_shape) * itemsize
    rho = f.condition.get("spectral_radius", 0.0)
    options = []
    if f.causal_tail > 0:
        length, d = f.out_shape[-1], f.dilation
        cap_steps = max(1, min(block_size or length, length) // d)
        steps_set = {cap_steps} if rho <= 1 else (
            {s for s in (2**j for j in range(cap_steps.bit_length())) if s <= cap_steps}
            | {cap_steps})
        for steps in sorted(steps_set):
            n_blocks = -(-length // (steps * d))
            frag_bytes = batch * f.out_shape[0] * (n_blocks - 1) * f.causal_tail * itemsize
            growth = layer_growth(f.condition, steps)
            size = block_size if rho <= 1 else steps * d
            why = "block: spectral radius > 1" if rho > 1 else ""
            if detailed:
                why = (f"block {size}: spectral radius {rho:.3g}, " if rho > 1 else "") + \
                      f"predicted amplification {growth:.3g}x"
            options.append(LayerPlan(size, reason=why, log_growth=math.log(growth),
                                     stored_bytes=frag_bytes))
    else:
        growth = layer_growth(f.condition, f.out_shape[-1] if f.out_shape else 1)
        why = f"predicted amplification {growth:.3g}x" if detailed and growth > 1 else ""
        options.append(LayerPlan(block_size, reason=why, log_growth=math.log(growth)))
    if negative_units and f.negative_slope is not None and f.negative_slope < 1:
        why = f"negative units: no division by the slope {f.negative_slope:g}"
        if detailed:
            why += f" (stores h_out at the {f.negative_fraction:.0%} negative units)"
        options.append(LayerPlan(block_size, negative_units=True, reason=why,
                                 stored_bytes=f.negative_fraction * out_bytes))
    if not last:
        options.append(LayerPlan(block_size, checkpoint=True, log_growth=-math.inf,
                                 stored_bytes=out_bytes,
                                 reason="checkpoint: Phase III restarts here"))
    return options


def _search(options: list[list[LayerPlan]], log_budget: float) -> list[LayerPlan]:
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
                    # (capped: an infinite growth, a singular layer, is just over)
                    new = state + math.ceil(min(opt.log_growth / width, over) - 1e-9)
                    if new > _BINS:
                        extra, new = (_OVER if state != over else 0.0), over
                total = spent + opt.stored_bytes + extra
                if new not in nxt or total < nxt[new]:
                    nxt[new], step[new] = total, (state, j)
        cost = nxt
        back.append(step)
    state = min(cost, key=cost.__getitem__)
    picked = []
    for layer_options, step in zip(reversed(options), reversed(back), strict=True):
        state, j = step[state]
        picked.append(layer_options[j])
    return picked[::-1]


def choose(facts: Sequence[LayerFacts], *, batch: int, itemsize: int, eps: float,
           tolerance: float, block_size: int | None, negative_units: bool = True,
           detailed: bool = True) -> list[LayerPlan]:
    """Per-layer storage with the fewest bytes that keeps the predicted error amplification
    between two restarts under ``tolerance / (MARGIN · eps)``.

    Args:
        facts: one per layer, in order.
        batch, itemsize: to count bytes.
        eps: machine epsilon of the dtype.
        tolerance: the relative gradient error the caller accepts.
        block_size: the caller's block size: kept for stable convs, an upper bound otherwise.
        negative_units: whether leaky ReLUs may store their negative units.
        detailed: per-layer numbers in the reasons (equal reasons keep equal layers equal).
    """
    budget = tolerance / (MARGIN * eps)
    options = [_options(f, batch, itemsize, block_size, i == len(facts) - 1, negative_units,
                        detailed) for i, f in enumerate(facts)]
    picked = _search(options, math.log(max(budget, 1.0 + 1e-9)))
    out, acc = [], 1.0
    for c in picked:
        acc = 1.0 if c.checkpoint else acc * math.exp(c.log_growth)
        reason = c.reason
        if acc > budget:
            reason += f"{'; ' if reason else ''}over budget {budget:.3g}: no plan meets the " \
                      "tolerance (use float64)"
        elif c.checkpoint:
            reason += f" (amplification budget tolerance/(2 eps) = {budget:.3g})"
        elif detailed and reason:
            reason += f"; {acc:.3g}x since the last restart (budget {budget:.3g})"
        if detailed and c.stored_bytes:
            reason += f"; stores {c.stored_bytes:.0f} bytes"
        out.append(dataclasses.replace(c, reason=reason))
    return out
