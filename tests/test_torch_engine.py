"""Networks: Moonwalk gradients equal Backprop's (float64, 1e-10 relative) on random 1D nets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import moonwalk_core.torch as mw
from moonwalk_core import arch, methods

from .helpers import RTOL, assert_grads_close, rel_error


def _data(spec: arch.ArchSpec, batch: int, dtype: str, seed: int = 0):
    x = mw.random_input((batch, *spec.input_shape), dtype=dtype, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, spec.output_shape[0], (batch,), generator=gen)
    return x, y


@st.composite
def nets_1d(draw: st.DrawFn) -> arch.ArchSpec:
    """Random 1D nets: stem, causal convs (kernel, dilation), leaky ReLU or ReLU, patch conv,
    optional narrowing linear layers."""
    channels = draw(st.integers(2, 6))
    patch = draw(st.sampled_from([1, 2, 4]))
    length = patch * draw(st.integers(2, 6))
    stem_kernel = draw(st.integers(1, 3))
    layers: list[dict] = [{"type": "stem", "channels": channels, "kernel_size": stem_kernel}]
    for _ in range(draw(st.integers(1, 4))):
        layers.append({"type": "causal_conv1d", "kernel_size": draw(st.integers(1, 4)),
                       "dilation": draw(st.integers(1, 3))})
        layers.append(draw(st.sampled_from([{"type": "relu"},
                                            {"type": "leaky_relu", "negative_slope": 0.2},
                                            {"type": "leaky_relu", "negative_slope": 0.7}])))
    head = draw(st.integers(1, channels * patch))
    layers += [{"type": "patch_conv1d", "channels": head, "patch": patch}, {"type": "flatten"}]
    features = head * (length // patch)
    layers.append({"type": "linear", "features": draw(st.integers(1, features))})
    return arch.load({"input_shape": [draw(st.integers(1, 3)), length], "layers": layers})


def _lcm_dilations(spec: arch.ArchSpec) -> int:
    import math

    return math.lcm(*[ls.fields.get("dilation", 1) for ls in spec.layers
                      if ls.type == "causal_conv1d"])


@given(spec=nets_1d(), block=st.integers(1, 3), every=st.sampled_from([None, 1, 2, 3]),
       seed=st.integers(0, 2**16))
def test_moonwalk_equals_backprop_on_random_1d_nets(spec, block, every, seed) -> None:
    model = mw.build(spec, seed=seed, dtype="float64")
    x, y = _data(spec, 3, "float64", seed)
    _, ref = mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())
    block_size = block * _lcm_dilations(spec)
    for method in (methods.Moonwalk(), methods.Moonwalk(block_size=block_size),
                   methods.Moonwalk(block_size=block_size, checkpoint_every=every),
                   methods.Moonwalk(pack_residuals=False, checkpoint_every=every)):
        result = mw.gradient(model, F.cross_entropy, x, y, method=method)
        assert_grads_close(result.grads, ref, "float64", f"{method} on {spec.to_dict()}")
        assert result.self_check is not None and result.self_check < RTOL["float64"]


@pytest.mark.parametrize("activation", ["leaky_relu", "relu"])
@pytest.mark.parametrize("block_size", [None, 4, 16])
def test_moonwalk_matches_backprop_on_the_reference_family(activation: str, block_size) -> None:
    spec = arch.causal_conv_net(6, channels=8, length=64, activation=activation, dilation=2)
    model = mw.build(spec, seed=1, dtype="float64")
    x, y = _data(spec, 4, "float64")
    loss_ref, ref = mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())
    loss, grads = mw.value_and_grad(model, F.cross_entropy, x, y,
                                    method=methods.Moonwalk(block_size=block_size))
    assert rel_error(loss, loss_ref) < 1e-14
    assert_grads_close(grads, ref, "float64", f"{activation}, block_size={block_size}")


def test_float32_moonwalk_is_close_to_float64_backprop() -> None:
    spec = arch.causal_conv_net(8, channels=16, length=128)
    x, y = _data(spec, 4, "float64")
    ref64 = mw.value_and_grad(mw.build(spec, seed=2, dtype="float64"), F.cross_entropy, x, y,
                              method=methods.Backprop())[1]
    model32 = mw.build(spec, seed=2, dtype="float32")
    _, grads = mw.value_and_grad(model32, F.cross_entropy, x.float(), y,
                                 method=methods.Moonwalk(block_size=32))
    assert_grads_close(grads, ref64, "float32", "float32 Moonwalk vs float64 Backprop")


def test_checkpointed_equals_backprop() -> None:
    spec = arch.causal_conv_net(5, channels=4, length=32)
    model = mw.build(spec, seed=0, dtype="float64")
    x, y = _data(spec, 2, "float64")
    ref = mw.value_and_grad(model, F.cross_entropy, x, y, method=methods.Backprop())[1]
    for segments in (None, 1, 3):
        grads = mw.value_and_grad(model, F.cross_entropy, x, y,
                                  method=methods.Checkpointed(segments))[1]
        assert_grads_close(grads, ref, "float64", f"Checkpointed({segments})")


def test_backward_is_a_drop_in_for_loss_backward_in_sgd() -> None:
    spec = arch.causal_conv_net(3, channels=4, length=32, activation="relu")
    reference = mw.build(spec, seed=5, dtype="float64")
    model = mw.build(spec, seed=5, dtype="float64")
    opt_ref = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(4):
        x, y = _data(spec, 4, "float64", seed=step)
        opt_ref.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        opt_ref.step()
        opt.zero_grad()
        mw.backward(model, F.cross_entropy, x, y, method=methods.Moonwalk(block_size=8))
        opt.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert rel_error(p, q) < 1e-12, name
