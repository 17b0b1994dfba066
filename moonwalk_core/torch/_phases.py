"""Moonwalk's three phases over a torch model (docs/method.md), and what they share with the
other methods: the loss's own cotangent, the weight checks and the relative error.

Nothing here dispatches on methods or reads method options beyond what it is given; the methods
(``_moonwalk``, ``_forward_modes``, ``_revbackprop``) call these functions, and ``_api``
dispatches to the methods.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._conditioning import check_invertible
from .._plan import LayerPlan
from ._base import AbstractLayer, host
from ._containers import FullFragment
from ._model import MoonwalkModel
from ._toeplitz import FilterInverse, filter_bytes, filter_inverses

__all__ = ["LossFn", "loss_and_cotangent", "relative_error", "check_weights", "forward_phase",
           "reverse_phase", "FFTConstants", "inverse_forward_phase"]

LossFn = Callable[[Tensor, Tensor], Tensor]


def loss_and_cotangent(loss_fn: LossFn, x_out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(loss, dloss/dx_out)`` through the loss alone."""
    loss, pullback = torch.func.vjp(lambda z: loss_fn(z, y), x_out)
    if loss.ndim != 0:
        raise ValueError(f"loss_fn must return a scalar; it returned shape {tuple(loss.shape)}")
    (h,) = pullback(torch.ones_like(loss))
    return loss.detach(), h


def relative_error(a: Tensor, b: Tensor) -> Tensor:
    """``‖a - b‖ / ‖b‖`` (``‖a - b‖`` when b = 0) as a 0-dim tensor on the inputs' device: no
    host sync until the caller reads it."""
    work = torch.promote_types(b.dtype, torch.float32)  # bfloat16 norms lose digits
    ref = torch.linalg.vector_norm(b, dtype=work)
    diff = torch.linalg.vector_norm(a.to(work) - b.to(work))
    return diff / (ref + (ref == 0))  # ref >= 0: divides by ref, or by 1 where ref = 0


# model -> the weights' identities and versions when they last passed the check
_CHECKED: weakref.WeakKeyDictionary[MoonwalkModel, tuple] = weakref.WeakKeyDictionary()


def weights_version(model: MoonwalkModel) -> tuple:
    """Changes whenever a parameter is replaced or modified in place (optimizer steps
    included); edits through ``p.data`` bypass the version counter and are not seen."""
    return tuple((id(p), p.data_ptr(), p._version) for p in model.parameters())


def check_weights(model: MoonwalkModel) -> None:
    """Every layer's weight check (e.g. singular taps), before any phase runs: once per weight
    version, with one host copy of all the taps (one sync however deep the model)."""
    version = weights_version(model)
    if _CHECKED.get(model) == version:
        return
    taps = [(layer, name, tap) for layer in model
            for name, tap in layer.invertible_taps().items()]
    if taps:
        flat = host(torch.cat([tap.detach().reshape(-1).to(taps[0][2].dtype)
                               for _, _, tap in taps]))
        offset = 0
        for layer, name, tap in taps:
            values = flat[offset:offset + tap.numel()].reshape(tuple(tap.shape))
            offset += tap.numel()
            check_invertible(values, layer=f"layer {layer.index} ({layer.type_name})",
                             tap_name=name)
    for layer in model:  # layers with checks of their own beyond their taps
        if type(layer).check_weights is not AbstractLayer.check_weights:
            layer.check_weights()
    _CHECKED[model] = version


def forward_phase(model: MoonwalkModel, x0: Tensor, *, pack_residuals: bool = True
                  ) -> tuple[Tensor, list[Any], list[torch.Size]]:
    """Phase I: x_L, the input-vjp residuals of every layer (nothing else) and each layer's
    input shape."""
    residuals, shapes = [], []
    x = x0
    for layer in model:
        shapes.append(x.shape)
        x, res = layer.forward_with_residual(x, pack_residuals=pack_residuals)
        residuals.append(res)
    return x, residuals, shapes


def reverse_phase(model: MoonwalkModel, residuals: list[Any], h_last: Tensor,
                  plan: list[LayerPlan]) -> tuple[Tensor, list[Any]]:
    """Phase II: h_0 and the fragments, by input vjps only; each h_i dropped once used."""
    fragments: list[Any] = [None] * len(model)
    h = h_last
    for i in range(len(model) - 1, -1, -1):
        layer, res = model.layers[i], residuals.pop()
        if plan[i].checkpoint:
            fragments[i] = FullFragment(h)
        elif plan[i].negative_units:  # the plan only asks layers that offer it
            fragments[i] = layer.negative_units_fragment(res, h)
        else:
            fragments[i] = layer.fragment(res, h, block_size=plan[i].block_size)
        h = layer.vjp(res, h)
        del res  # the residual's only use was this vjp
    return h, fragments


class FFTConstants:
    """The FFT solver's inverse filters for every causal filter Phase III solves (causal convs
    along time, masked conv2ds along rows; docs/method.md, 'The FFT solver'), made when Phase
    III first needs them.

    Layers whose taps and block length agree are done together, in batches whose inverse filters
    take at most about one activation's bytes (``budget`` times the layer's input), so that the
    batched doubling's launches are shared without holding every layer's filter at once.
    ``peak_bytes``: the largest batch held.
    """

    def __init__(self, model: MoonwalkModel, shapes: list[torch.Size], fragments: list[Any],
                 budget: float = 1.0) -> None:
        self.model = model
        groups: dict[tuple, list[int]] = {}
        self.steps: dict[int, int] = {}
        for i, layer in enumerate(model):
            frag = fragments[i]
            if layer.block_axis not in ("time", "rows") or isinstance(frag, FullFragment):
                continue
            steps = layer.filter_steps(shapes[i][-1], frag)
            if steps:
                self.steps[i] = steps
                taps = layer.filter_taps()
                groups.setdefault((tuple(taps.shape), taps.dtype, steps), []).append(i)
        self.batch_of: dict[int, list[int]] = {}
        for (shape, dtype, steps), members in groups.items():
            k, c, _ = shape
            per_layer = filter_bytes(k, c, steps, dtype)
            activation = shapes[members[0]].numel() * dtype.itemsize
            size = max(1, int(budget * activation // per_layer))
            for start in range(0, len(members), size):
                batch = members[start:start + size]
                for i in batch:
                    self.batch_of[i] = batch
        self.ready: dict[int, FilterInverse] = {}
        self.peak_bytes = 0

    def pop(self, i: int) -> FilterInverse | None:
        """Layer i's inverse filter (made with its batch on first use), then forgotten."""
        if i not in self.batch_of:
            return None
        if i not in self.ready:
            batch = self.batch_of[i]
            taps = torch.stack([self.model.layers[j].filter_taps() for j in batch])
            self.ready.update(zip(batch, filter_inverses(taps, self.steps[i]), strict=True))
            self.peak_bytes = max(self.peak_bytes, sum(
                inv.spectrum.numel() * inv.spectrum.element_size() for inv in self.ready.values()))
        return self.ready.pop(i)


def inverse_forward_phase(model: MoonwalkModel, x0: Tensor, h0: Tensor, fragments: list[Any],
                          restart_checks: dict[int, Tensor] | None = None,
                          constants: FFTConstants | None = None
                          ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Phase III: recompute x_i, recover h_i by vijp, take h_i · J_theta at x_{i-1}.

    Returns the gradients, x_L and the reconstructed h_L (for the self-check). At each layer
    whose full output cotangent was stored, ``restart_checks[i]`` receives the relative error
    of the reconstructed h_{i-1} against vjp(stored h_i): the self-check of the segment that
    ends there (Note: [self-check at restarts]). ``constants``, when given, supplies layer i's
    vijp constants (the FFT solver's inverse filters), each dropped once used.
    """
    grads: dict[str, Tensor] = {}
    x, h = x0, h0
    for i, layer in enumerate(model):
        frag, fragments[i] = fragments[i], None  # free the fragment as soon as it is used
        if restart_checks is not None and i > 0 and isinstance(frag, FullFragment):
            # Note: [self-check at restarts] (moonwalk_core/_accuracy.py)
            _, res = layer.forward_with_residual(x)
            restart_checks[i] = relative_error(h, layer.vjp(res, frag.h_out))
            del res
        h = layer.vijp(x, h, frag, None if constants is None else constants.pop(i))
        x, layer_grads = layer.forward_and_param_vjp(x, h)
        grads.update({f"layers.{i}.{k}": g for k, g in layer_grads.items()})
    return grads, x, h
