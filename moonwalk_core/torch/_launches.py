"""Counting kernel launches and host syncs without a GPU (docs/measurement.md, 'Launches and
syncs').

On a GPU, a method whose every kernel is small is bound by the host's cost per launch (about
10 µs), and every host sync stalls the stream. Both can be counted on the CPU: every ATen op that
reaches the dispatcher and is neither a view nor an allocation would be a kernel launch on CUDA,
and a handful of ops need the host to see device data (``.item()``, ``nonzero``,
``masked_select``...). Copies of device tensors to the host (:func:`._base.host`) are syncs too;
they are counted where they are made.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import _base

__all__ = ["LaunchCounter", "SYNC_OPS", "count_warm"]

_aten = torch.ops.aten

SYNC_OPS = frozenset({
    _aten._local_scalar_dense.default,  # .item(), .tolist(), int(t), float(t), bool(t)
    _aten.is_nonzero.default,
    _aten.nonzero.default,  # the output size is data: the host must wait for the device
    _aten.masked_select.default,
    _aten.equal.default,
    _aten._unique2.default,
    _aten.unique_consecutive.default,
    _aten.repeat_interleave.Tensor,
    # the error check of linalg.inv / solve / cholesky...: reads the info tensor on the host
    # (the ``_ex`` variants skip it)
    _aten._linalg_check_errors.default,
})
"""Ops whose result the host needs before it can go on: each is a stream sync on CUDA."""

_NO_LAUNCH = frozenset({
    _aten.empty.memory_format, _aten.empty_strided.default, _aten.new_empty.default,
    _aten.new_empty_strided.default, _aten.empty_like.default, _aten.lift_fresh.default,
    _aten.detach.default, _aten._unsafe_view.default, _aten._reshape_alias.default,
    _aten.promote_types.default,  # dtype arithmetic on the host
})
"""Allocations and autograd bookkeeping: no kernel runs."""


class LaunchCounter(TorchDispatchMode):
    """``with LaunchCounter() as c: ...`` counts ``c.launches`` (work-launching ATen ops),
    ``c.syncs`` (host syncs: :data:`SYNC_OPS` and host copies) and ``c.ops`` (per op name)."""

    def __init__(self) -> None:
        super().__init__()
        self.launches = 0
        self.syncs = 0
        self.ops: Counter[str] = Counter()
        self._copies = 0

    def __enter__(self) -> LaunchCounter:
        self._copies = _base.HOST_COPIES.count
        return super().__enter__()

    def __exit__(self, *args: Any) -> None:
        copies = _base.HOST_COPIES.count - self._copies
        self.syncs += copies
        if copies:
            self.ops["host copy"] += copies
        super().__exit__(*args)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        if func in SYNC_OPS:
            self.syncs += 1
            self.ops[str(func)] += 1
        elif not func.is_view and func not in _NO_LAUNCH:
            self.launches += 1
            self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


def count_warm(call: Callable[[], object]) -> LaunchCounter:
    """Launches and syncs of ``call()`` once warm: one uncounted call first (weight checks,
    plans and other lazily built state are not per-gradient work), then one counted."""
    call()
    with LaunchCounter() as counter:
        call()
    return counter
