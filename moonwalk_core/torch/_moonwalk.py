"""The Moonwalk method in torch: plan, Phase I-III, self-check and byte accounting
(docs/method.md)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._accuracy import worst_check
from ..methods import Moonwalk
from ._base import host
from ._containers import nbytes, resolve_sizes
from ._model import MoonwalkModel
from ._phases import (
    FFTConstants,
    LossFn,
    check_weights,
    forward_phase,
    inverse_forward_phase,
    loss_and_cotangent,
    relative_error,
    reverse_phase,
)
from ._result import GradientResult
from ._stability import plan_storage
from ._workspace import scratch

__all__ = ["moonwalk"]


def moonwalk(model: MoonwalkModel, loss_fn: LossFn, x: Tensor, y: Tensor,
             method: Moonwalk) -> GradientResult:
    """Mixed-mode Moonwalk: weight checks, the storage plan, then Phase I, II and III under
    ``no_grad``. The model is not modified (options are passed to the layers per call)."""
    check_weights(model)
    plan = plan_storage(model, method, x)
    halos = {layer.input_halo for layer in model} - {0}
    # one padding shared by every causal conv: activations carry it (Note: [scratch buffers]);
    # Phase II needs no buffers, so Phase I's are freed before it
    halo = halos.pop() if len(halos) == 1 else 0
    with torch.no_grad():
        with scratch(halo):
            x_last, residuals, shapes = forward_phase(model, x,
                                                      pack_residuals=method.pack_residuals)
        solver = method.solver_for(x.device.type)
        if solver == "fft":  # the accelerator path: no host sync inside the phases
            resolve_sizes(residuals)  # Note: [sizes from data]
        residual_bytes = nbytes(residuals)
        loss, h_last = loss_and_cotangent(loss_fn, x_last, y)
        del x_last  # Phase III recomputes it
        h0, fragments = reverse_phase(model, residuals, h_last, plan)
        del h_last  # only the reconstruction of Phase III may be compared with it
        checkpoint_bytes = sum(nbytes(f) for f, p in zip(fragments, plan, strict=True)
                               if p.checkpoint)
        fragment_bytes = nbytes(fragments) - checkpoint_bytes
        restart: dict[int, Tensor] = {}
        constants = FFTConstants(model, shapes, fragments) if solver == "fft" else None
        with scratch(halo):
            grads, x_last, h_last = inverse_forward_phase(model, x, h0, fragments, restart,
                                                          constants)
        _, h_true = loss_and_cotangent(loss_fn, x_last, y)
        # the largest error of any segment between two restarts (docs/method.md, 'Self-check');
        # read in one host sync, after the phases
        checks = host(torch.stack([relative_error(h_last, h_true), *restart.values()])).tolist()
        self_check = worst_check(checks)
        restart_checks = dict(zip(restart, checks[1:], strict=True))
    stored = {"input": nbytes(x), "residuals": residual_bytes, "fragments": fragment_bytes,
              "checkpoints": checkpoint_bytes}
    stored["total"] = sum(stored.values())
    return GradientResult(loss, grads, self_check, stored, plan,
                          info={"restart_checks": restart_checks, "solver": solver,
                                "solver_bytes": 0 if constants is None else constants.peak_bytes})
