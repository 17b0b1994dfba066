"""Data parallelism for Moonwalk in JAX: the batch sharded over devices with ``jax.sharding``.

:func:`data_parallel_value_and_grad` places the batch on a one-axis device mesh
(``NamedSharding(mesh, P("batch"))``) and, under ``jit``, runs the Moonwalk phases on each
device's shard with ``jax.shard_map``; the loss and gradients are averaged over the devices
with ``lax.pmean``. Each device computes exactly what one process computes in the torch
backend's data-parallel mode: no collective runs inside the three phases, one all-reduce
follows them. With a mean-reduced loss and equal shards this equals the full-batch gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
from jax import Array, lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..methods import Method, Moonwalk
from ._api import value_and_grad
from ._model import MoonwalkModel

__all__ = ["data_parallel_value_and_grad", "batch_mesh"]

AXIS = "batch"


def batch_mesh(devices: list[Any] | None = None) -> Mesh:
    """A one-axis mesh named "batch" over ``devices`` (default: every device JAX sees)."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), (AXIS,), devices=devices)


@eqx.filter_jit
def _sharded(model: MoonwalkModel, loss_fn: Callable[[Array, Array], Array], x: Array,
             y: Array, method: Method, mesh: Mesh) -> tuple[Array, dict[str, Array]]:
    arrays, static = eqx.partition(model, eqx.is_array)
    batch = NamedSharding(mesh, P(AXIS))
    x, y = jax.reshard(x, batch), jax.reshard(y, batch)  # a no-op when already placed so

    def local(arrays: Any, x: Array, y: Array) -> tuple[Array, dict[str, Array]]:
        loss, grads = value_and_grad(eqx.combine(arrays, static), loss_fn, x, y, method=method)
        return lax.pmean(loss, AXIS), lax.pmean(grads, AXIS)

    # check_vma=False: the core's phases are written for one device, without varying-axis
    # annotations. With the check on, the vjp of a replicated weight inside the shard is
    # transposed into a psum over the devices, so the layers whose parameter gradient comes
    # from jax.vjp returned sums while the hand-written ones did not (0.77 relative error in
    # tests/test_jax_data_parallel.py), and some scans reject a replicated initial carry.

    run = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(AXIS), P(AXIS)), out_specs=(P(), P()),
                        check_vma=False)
    return run(arrays, x, y)


def data_parallel_value_and_grad(model: MoonwalkModel, loss_fn: Callable[[Array, Array], Array],
                                 x: Array, y: Array, *, method: Method = Moonwalk(),
                                 mesh: Mesh | None = None) -> tuple[Array, dict[str, Array]]:
    """``value_and_grad`` with the batch split over the devices of ``mesh``.

    Args:
        model, loss_fn, x, y, method: as :func:`moonwalk_core.jax.value_and_grad`; ``loss_fn``
            must average over the batch (each device's loss is the mean over its shard).
        mesh: a one-axis mesh whose axis is named "batch" (:func:`batch_mesh`; default: all
            devices). The batch size must divide by its size.

    Returns:
        ``(loss, grads)`` averaged over the devices, replicated on each of them.

    Raises:
        ValueError: when the batch does not divide by the number of devices, or the mesh has
            no "batch" axis.
    """
    mesh = batch_mesh() if mesh is None else mesh
    if AXIS not in mesh.shape:
        raise ValueError(f"mesh axes {tuple(mesh.shape)}: the mesh needs an axis named {AXIS!r}")
    n = mesh.shape[AXIS]
    if x.shape[0] % n or y.shape[0] != x.shape[0]:
        raise ValueError(f"batch of {x.shape[0]} examples (labels: {y.shape[0]}) does not split "
                         f"evenly over {n} devices")
    return _sharded(model, loss_fn, x, y, method, mesh)
