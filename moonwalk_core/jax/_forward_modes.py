"""The forward modes of the 2024 paper: PureForward and NaiveForward (docs/method.md,
'Forward modes')."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array

from .._plan import LayerPlan
from .._validation import check_jvp_count, check_surjective
from ..methods import NaiveForward, PureForward
from ._containers import nbytes
from ._model import MoonwalkModel
from ._phases import LossFn, inverse_forward_phase, loss_and_cotangent, relative_error
from ._result import GradientResult
from ._runs import find_runs, stack_run

__all__ = ["pure_forward", "naive_forward"]


def _unit_tangents(start: int, stop: int, shape: tuple[int, ...], dtype: jnp.dtype) -> Array:
    """Unit vectors e_start .. e_{stop-1} of a flattened ``shape``, as (stop - start, *shape)."""
    n = math.prod(shape)
    rows = jnp.arange(stop - start)
    eye = jnp.zeros((stop - start, n), dtype=dtype).at[rows, rows + start].set(1)
    return eye.reshape(stop - start, *shape)


def _input_cotangent(model: MoonwalkModel, x: Array, h_last: Array, chunk_size: int) -> Array:
    """h_0 = dL/dx_0 by forward mode: one JVP per per-example input dimension.

    The tangent e_j is the same unit vector in every example, so one JVP gives J_b e_j for all
    examples b at once, and ``h_0[b, j] = <h_L[b], J_b e_j>``. This is exact because every layer
    acts on each example separately (no batch statistics). ``chunk_size`` tangents share one
    ``jax.vmap``-batched JVP.
    """
    batch, shape = x.shape[0], tuple(x.shape[1:])
    n = math.prod(shape)

    def directional(tangent: Array) -> Array:  # tangent (B, *shape) -> <h_L[b], J_b t[b]>
        _, x_dot = jax.jvp(model, (x,), (tangent,))
        return (x_dot * h_last).reshape(batch, -1).sum(1)

    batched = jax.vmap(directional)
    columns = []
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        units = _unit_tangents(start, stop, shape, x.dtype)
        columns.append(batched(jnp.broadcast_to(units[:, None], (stop - start, batch, *shape))))
    return jnp.concatenate(columns).T.reshape(x.shape)


def pure_forward(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array,
                 method: PureForward) -> GradientResult:
    """h_0 by forward mode (JVPs, chunked), then Phase III: time linear in depth.

    The loss's own gradient dL/dx_L (the loss function alone, not the network) is a vjp.

    Raises:
        ValueError: for a layer whose Jacobian is not surjective: PureForward has no Phase II,
            so nothing stores the fragment its vijp needs.
    """
    check_surjective(model)
    loss, h_last = loss_and_cotangent(loss_fn, model(x), y)
    h0 = _input_cotangent(model, x, h_last, method.chunk_size)
    del h_last  # only the reconstruction of Phase III may be compared with it
    plan = [LayerPlan() for _ in model]
    runs = find_runs(model.layers, plan, x)
    units = [stack_run(model.layers, run) for run in runs]
    fragments = [(None,) * run.unit for run in runs]
    grads, x_last, h_last = inverse_forward_phase(units, runs, x, h0, fragments)
    _, h_true = loss_and_cotangent(loss_fn, x_last, y)
    self_check = relative_error(h_last, h_true)
    return GradientResult(loss, grads, self_check,
                          stored_bytes={"input": nbytes(x), "total": nbytes(x)},
                          info={"jvps": math.prod(x.shape[1:])})


def naive_forward(model: MoonwalkModel, loss_fn: LossFn, x: Array, y: Array,
                  method: NaiveForward) -> GradientResult:
    """Every parameter's gradient by its own JVP of the loss (chunked): time quadratic in depth.

    Raises:
        ValueError: when the model has more than ``method.max_parameters`` parameters.
    """
    params = model.parameters()
    total = sum(int(p.size) for p in params.values())
    check_jvp_count(total, method.max_parameters)
    loss = loss_fn(model(x), y)
    grads: dict[str, Array] = {}
    for name, p in params.items():
        def loss_of(value: Array, name: str = name) -> Array:
            return loss_fn(model.with_parameters({**params, name: value})(x), y)

        def derivative(tangent: Array, p: Array = p, loss_of=loss_of) -> Array:
            return jax.jvp(loss_of, (p,), (tangent,))[1]

        batched = jax.vmap(derivative)
        flat = [batched(_unit_tangents(start, min(start + method.chunk_size, p.size),
                                       p.shape, p.dtype))
                for start in range(0, p.size, method.chunk_size)]
        grads[name] = jnp.concatenate(flat).reshape(p.shape)
    return GradientResult(loss, grads, stored_bytes={"input": nbytes(x), "total": nbytes(x)},
                          info={"jvps": total})
