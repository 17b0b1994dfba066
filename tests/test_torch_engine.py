"""The torch engine on the 1D family: Moonwalk and Checkpointed equal Backprop (float64, 1e-10
relative), float32 stays close, ``backward`` is a drop-in for ``loss.backward()``, and the engine
leaves the user's model as it found it. (Random nets in both backends: test_random_nets.py.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, methods

from .helpers import assert_grads_close, batch, rel_error


def _data(spec: arch.ArchSpec, size: int, dtype: str, seed: int = 0):
    return batch("torch", spec, size, dtype, seed)


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


def _options(layer: torch.nn.Module) -> dict:
    """A layer's plain attributes (everything but parameters, buffers and submodules)."""
    return {k: v for k, v in vars(layer).items()
            if k not in ("_parameters", "_buffers", "_modules") and not k.startswith("_")}


def test_the_engine_leaves_the_model_as_it_found_it() -> None:
    # options such as pack_residuals are passed to the layers per call, never set on them
    spec = arch.causal_conv_net(2, channels=4, length=16, activation="relu")
    model = mw.build(spec, seed=0, dtype="float64")
    before = [_options(layer) for layer in model]
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _data(spec, 2, "float64")
    for method in (methods.Moonwalk(pack_residuals=False, block_size=4),
                   methods.Moonwalk(checkpoint_every="auto"), methods.Backprop()):
        mw.gradient(model, F.cross_entropy, x, y, method=method)
    assert [_options(layer) for layer in model] == before
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
