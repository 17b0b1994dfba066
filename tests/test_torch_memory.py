"""Stored-bytes accounting: orderings measured side by side, and the accounting itself."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, methods


def _run(method, spec, dtype="float32"):
    model = mw.build(spec, seed=0, dtype=dtype)
    x = mw.random_input((4, *spec.input_shape), dtype=dtype)
    y = torch.arange(4) % 10
    return mw.gradient(model, F.cross_entropy, x, y, method=method)


def test_moonwalk_stores_far_less_than_backprop_on_the_reference_net() -> None:
    spec = arch.causal_conv_net(8, channels=16, length=256)
    backprop = _run(methods.Backprop(), spec).stored_bytes["total"]
    checkpointed = _run(methods.Checkpointed(), spec).stored_bytes["total"]
    moonwalk = _run(methods.Moonwalk(block_size=64), spec).stored_bytes
    assert moonwalk["total"] < checkpointed < backprop
    assert moonwalk["total"] * 4 < backprop
    # one activation of the stem's full fragment plus x0 dominate; the 17 activations' residuals
    # are bit masks
    activation = 4 * 16 * 256 * 4
    assert moonwalk["residuals"] <= 17 * activation / 32 + 17


def test_packed_residuals_are_eight_times_smaller_than_bool_masks() -> None:
    spec = arch.causal_conv_net(4, channels=8, length=64)
    packed = _run(methods.Moonwalk(), spec).stored_bytes["residuals"]
    unpacked = _run(methods.Moonwalk(pack_residuals=False), spec).stored_bytes["residuals"]
    assert unpacked == 8 * packed


def test_saved_tensor_counter_counts_a_known_allocation_once() -> None:
    w = torch.randn(8, 8, requires_grad=True)
    x = torch.randn(100, 8)
    with mw.count_saved_tensors([w]) as counter:
        h = x @ w  # saves x (and w, excluded)
        (h.sum() + (x @ w).sum()).backward()  # x saved twice: one storage
    assert counter.bytes == x.numel() * 4


def test_cotangent_checkpoints_are_accounted_separately() -> None:
    spec = arch.causal_conv_net(4, channels=8, length=64)
    stored = _run(methods.Moonwalk(checkpoint_every=2), spec).stored_bytes
    n_layers = len(spec.layers)
    assert stored["checkpoints"] > 0
    assert stored["checkpoints"] <= (n_layers // 2) * 4 * 8 * 64 * 4
    assert stored["total"] == sum(v for k, v in stored.items() if k != "total")


def test_moonwalk_peak_grows_only_by_its_stored_bytes_with_depth() -> None:
    """The engine drops every activation once used: deeper nets add only residual bits and
    fragments to the allocator peak, while Backprop's peak grows by whole activations."""
    from moonwalk_core import measure

    activation = 4 * 16 * 256 * 4  # batch x channels x length x float32
    peak, stored = {}, {}
    for depth in (4, 24):
        spec = arch.causal_conv_net(depth, channels=16, length=256)
        for name, method in (("mw", methods.Moonwalk(block_size=64)), ("bp", methods.Backprop())):
            r = measure.peak_memory("torch", spec, method, batch=4)
            peak[depth, name], stored[depth, name] = r["peak_bytes"], r["stored_bytes"]
    moonwalk_growth = peak[24, "mw"] - peak[4, "mw"]
    assert moonwalk_growth <= stored[24, "mw"] - stored[4, "mw"] + activation // 2, moonwalk_growth
    assert peak[24, "bp"] - peak[4, "bp"] > 20 * activation
