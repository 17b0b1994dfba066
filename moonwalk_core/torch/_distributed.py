"""Data parallelism for Moonwalk with ``torch.distributed``: per-process gradients, all-reduced.

Every process runs Moonwalk on its own slice of the batch (``backward`` fills ``p.grad``), then
:func:`all_reduce_grads` averages the gradients over the processes. With equal local batches
and a mean-reduced loss, the result equals the full-batch gradient on one process.

``torch.nn.parallel.DistributedDataParallel`` cannot do this step: it all-reduces from autograd
hooks fired by ``loss.backward()``, and Moonwalk runs its three phases without autograd, so
those hooks never fire (DDP would silently train each process on its own gradients).

:func:`run_data_parallel` starts ``world_size`` local processes (``torch.multiprocessing``),
joins them with a deadline and returns each one's result; a failing rank ends the whole job
with that rank's traceback instead of leaving the others waiting in a collective. On several
machines use ``torchrun`` and call :func:`all_reduce_grads` the same way.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

__all__ = ["all_reduce_grads", "run_data_parallel"]


def all_reduce_grads(parameters: nn.Module | Iterable[nn.Parameter], *,
                     group: dist.ProcessGroup | None = None, average: bool = True) -> None:
    """Sum (``average=True``: average) every parameter's ``.grad`` over the process group.

    Call it after ``moonwalk_core.torch.backward`` and before ``optimizer.step()`` on every
    process, with the same parameters in the same order. The gradients travel as one flat
    buffer per (device, dtype), on the gradients' own device (NCCL needs CUDA tensors; gloo
    takes CPU ones). DDP's autograd hooks would not do this: Moonwalk computes gradients
    without autograd, so they never fire.

    Raises:
        RuntimeError: when no process group is initialized.
        ValueError: when a parameter that requires grad has no ``.grad``.
    """
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("all_reduce_grads needs torch.distributed.init_process_group first "
                           "(or run_data_parallel, which initializes it)")
    params = list(parameters.parameters() if isinstance(parameters, nn.Module) else parameters)
    missing = [i for i, p in enumerate(params) if p.requires_grad and p.grad is None]
    if missing:
        raise ValueError(f"all_reduce_grads: parameters {missing[:5]} have no .grad; call "
                         "moonwalk_core.torch.backward first")
    buckets: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for p in params:
        if p.grad is not None:
            buckets.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
    world = dist.get_world_size(group)
    for grads in buckets.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        if average:
            flat.div_(world)
        for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(part.view_as(g))


def _default_backend(world_size: int) -> str:
    return "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= world_size \
        else "gloo"


def _worker(rank: int, fn: Callable[..., Any], world_size: int, backend: str, folder: str,
            timeout_s: float, args: tuple[Any, ...]) -> None:
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=timeout_s))
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, os.path.join(folder, f"result-{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_data_parallel(fn: Callable[..., Any], world_size: int, *args: Any,
                      backend: str | None = None, timeout_s: float = 300.0) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` fresh processes, each in an
    initialized process group, and return their results in rank order.

    Args:
        fn: a module-level function (it is pickled into spawned processes); it returns what
            ``torch.save``/``torch.load(weights_only=True)`` can carry (tensors, numbers,
            strings, lists, dicts).
        world_size: number of processes.
        backend: "gloo" (CPU) or "nccl" (one CUDA device per rank: rank r uses ``cuda:r``);
            None picks NCCL when there are ``world_size`` CUDA devices, else gloo.
        timeout_s: the process group's timeout (a collective waiting longer fails) and the
            deadline for the whole job.

    Raises:
        RuntimeError: with the failing rank and its traceback when a rank raises or dies
            (the other ranks are terminated rather than left waiting).
        TimeoutError: when the job is not done by the deadline (every rank is terminated).
    """
    if world_size < 1:
        raise ValueError(f"world_size={world_size}: use an int >= 1")
    backend = backend or _default_backend(world_size)
    with tempfile.TemporaryDirectory(prefix="moonwalk-dp-") as folder:
        context = mp.start_processes(
            _worker, args=(fn, world_size, backend, folder, timeout_s, args), nprocs=world_size,
            join=False, start_method="spawn")
        deadline = time.monotonic() + timeout_s
        try:
            while not context.join(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"run_data_parallel: {world_size} processes were not done "
                                       f"after {timeout_s} s; terminated them")
        except mp.ProcessRaisedException as e:
            raise RuntimeError(f"run_data_parallel: rank {e.error_index} failed:\n{e}") from None
        except mp.ProcessExitedException as e:
            raise RuntimeError(f"run_data_parallel: rank {e.error_index} died "
                               f"(exit code {e.exit_code})") from None
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
                    process.join(5)
        return [torch.load(os.path.join(folder, f"result-{rank}.pt"), weights_only=True)
                for rank in range(world_size)]
