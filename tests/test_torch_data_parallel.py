"""Data parallel Moonwalk with torch.distributed: two gloo processes, each on half the batch,
all-reduced, give the one-process full-batch gradients (float64, 1e-12); a failing rank ends
the job with its error instead of a hang."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

import moonwalk_core.torch as mwt
from moonwalk_core import arch, methods

from .helpers import grads_rel_error

SPEC = arch.causal_conv_net(2, channels=4, in_channels=2, length=16, patch=4, classes=3)
METHOD = methods.Moonwalk(block_size=4)
BATCH = 8
DP_RTOL = 1e-12


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(BATCH, *SPEC.input_shape, generator=g, dtype=torch.float64)
    return x, torch.randint(0, 3, (BATCH,), generator=g)


def _rank_grads(rank: int, world_size: int, fail_rank: int = -1) -> dict[str, torch.Tensor]:
    """One rank: Moonwalk on its slice of the batch, then the all-reduce."""
    torch.set_num_threads(1)
    model = mwt.build(SPEC, seed=0, dtype="float64")
    x, y = _data()
    local = slice(rank * BATCH // world_size, (rank + 1) * BATCH // world_size)
    mwt.backward(model, F.cross_entropy, x[local], y[local], method=METHOD)
    if rank == fail_rank:
        raise ValueError(f"planted failure on rank {rank}")
    mwt.all_reduce_grads(model)
    return {name: p.grad for name, p in model.named_parameters()}


def _full_batch_grads() -> dict[str, torch.Tensor]:
    model = mwt.build(SPEC, seed=0, dtype="float64")
    x, y = _data()
    return mwt.value_and_grad(model, F.cross_entropy, x, y, method=METHOD)[1]


def test_two_gloo_processes_give_the_full_batch_gradients() -> None:
    results = mwt.run_data_parallel(_rank_grads, 2, backend="gloo", timeout_s=120)
    reference = _full_batch_grads()
    errors = [grads_rel_error(r, reference) for r in results]
    print(f"two processes vs one, max relative difference: {max(errors):.2e}")
    assert max(errors) < DP_RTOL, errors
    # and the full-batch Moonwalk gradients are autograd's
    model = mwt.build(SPEC, seed=0, dtype="float64")
    x, y = _data()
    backprop = mwt.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())[1]
    assert grads_rel_error(results[0], backprop) < 1e-10


def test_a_failing_rank_ends_the_job_with_its_error() -> None:
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="rank 1 failed(.|\n)*planted failure on rank 1"):
        mwt.run_data_parallel(_rank_grads, 2, 1, backend="gloo", timeout_s=120)
    # rank 0 waits in the all-reduce; the job must end well before the group's timeout
    assert time.monotonic() - start < 60


def test_all_reduce_grads_needs_a_process_group() -> None:
    model = mwt.build(SPEC, seed=0, dtype="float64")
    with pytest.raises(RuntimeError, match="init_process_group"):
        mwt.all_reduce_grads(model)


def _rank_skipping_the_all_reduce(rank: int, world_size: int) -> None:
    """Rank 1 never joins the collective: rank 0 would wait forever without timeouts."""
    if rank == 0:
        _rank_grads(rank, world_size)


def test_a_rank_missing_a_collective_ends_the_job_at_the_timeout() -> None:
    start = time.monotonic()
    with pytest.raises((RuntimeError, TimeoutError)):
        mwt.run_data_parallel(_rank_skipping_the_all_reduce, 2, backend="gloo", timeout_s=15)
    assert time.monotonic() - start < 60
