"""The Moonwalk method in JAX: Phase I-III over scanned runs, self-check and byte accounting
(docs/method.md). Pure and ``jit``-compatible; the plan and the weight checks, which need
concrete weights, are made by ``_api.gradient`` before it compiles this."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from .._plan import LayerPlan
from ..methods import Moonwalk
from ._containers import nbytes
from ._model import MoonwalkModel
from ._phases import (
    LossFn,
    forward_phase,
    inverse_forward_phase,
    loss_and_cotangent,
    relative_error,
    reverse_phase,
)
from ._result import GradientResult
from ._runs import find_runs, stack_run
from ._stability import plan_storage

__all__ = ["moonwalk"]


def moonwalk(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array, method: Moonwalk,
             plan: list[LayerPlan] | None = None) -> GradientResult:
    """Mixed-mode Moonwalk: Phase I, II and III, pure. ``plan``: the storage plan, when made
    ahead (``checkpoint_every="auto"`` needs concrete weights). ``method.solver`` "auto" is
    the FFT solver on accelerators (``jax.default_backend()``), substitution on the CPU."""
    plan = plan_storage(model, method, x) if plan is None else plan
    runs = find_runs(model.layers, plan, x)
    units = [stack_run(model.layers, run) for run in runs]
    x_last, residuals = forward_phase(units, runs, x, pack_residuals=method.pack_residuals)
    residual_bytes = nbytes(residuals)
    loss, h_last = loss_and_cotangent(loss_fn, x_last, y)
    del x_last  # Phase III recomputes it
    h0, fragments = reverse_phase(units, runs, residuals, h_last, plan)
    del h_last  # only the reconstruction of Phase III may be compared with it
    checkpoint_bytes = sum(nbytes(frags[j]) for frags, run in zip(fragments, runs, strict=True)
                           for j in range(run.unit) if plan[run.start + j].checkpoint)
    fragment_bytes = nbytes(fragments) - checkpoint_bytes
    restart_checks: dict[int, Array] = {}
    solver = method.solver_for(jax.default_backend())
    grads, x_last, h_last = inverse_forward_phase(units, runs, x, h0, fragments, restart_checks,
                                                  solver)
    _, h_true = loss_and_cotangent(loss_fn, x_last, y)
    # the largest error of any segment between two restarts (docs/method.md, 'Self-check');
    # jnp.max propagates NaN, so a diverged segment shows
    self_check = jnp.max(jnp.stack([relative_error(h_last, h_true), *restart_checks.values()]))
    stored = {"input": nbytes(x), "residuals": residual_bytes, "fragments": fragment_bytes,
              "checkpoints": checkpoint_bytes}
    stored["total"] = sum(stored.values())
    return GradientResult(loss, grads, self_check, stored, list(plan),
                          info={"restart_checks": restart_checks})
