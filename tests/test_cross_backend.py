"""Identical weights give identical losses and gradients in both backends (float64, 1e-10)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import moonwalk_core.jax as mwj
import moonwalk_core.torch as mwt
from moonwalk_core import arch, methods

from .helpers import assert_grads_close, jax_cross_entropy, rel_error

# names that exist in one backend only, and why
TORCH_ONLY = {
    "backward": "fills p.grad in place; JAX arrays have no .grad slot",
    "count_saved_tensors": "hooks autograd's tape; JAX has none (see jax compiled_memory)",
    "all_reduce_grads": "averages p.grad over torch.distributed processes; JAX shards instead",
    "run_data_parallel": "spawns torch.distributed processes; JAX shards over devices instead",
}
JAX_ONLY = {
    "compiled_memory": "XLA's compiled memory analysis; torch measures allocators instead",
    "device_memory_peak": "the device allocator's live peak of a jitted gradient; torch reads "
                          "its allocator directly (torch.cuda.max_memory_allocated)",
    "grads_to_module": "arrays are immutable: gradients are mapped onto the user's Equinox "
                       "model; torch shares nn.Parameters, so .grad lands there directly",
    "module_value_and_grad": "the Equinox drop-in for eqx.filter_value_and_grad; torch uses "
                             "backward on the from_module model",
    "data_parallel_value_and_grad": "one process, batch sharded over devices (jax.sharding); "
                                    "torch uses processes and all_reduce_grads",
    "batch_mesh": "the device mesh data_parallel_value_and_grad shards over",
}

SPEC = arch.load({"input_shape": [2, 16], "layers": [
    {"type": "stem", "channels": 4, "kernel_size": 3},
    {"type": "causal_conv1d", "kernel_size": 3, "dilation": 2},
    {"type": "leaky_relu", "negative_slope": 0.3},
    {"type": "causal_conv1d", "kernel_size": 2},
    {"type": "relu"},
    {"type": "causal_conv1d", "kernel_size": 2},
    {"type": "relu"},
    {"type": "patch_conv1d", "channels": 6, "patch": 2},
    {"type": "leaky_relu", "negative_slope": 0.5},
    {"type": "flatten"},
    {"type": "linear", "features": 5},
]})
METHODS = [methods.Backprop(), methods.Checkpointed(2), methods.Moonwalk(),
           methods.Moonwalk(block_size=4, checkpoint_every=2),
           methods.Moonwalk(block_size=2, pack_residuals=False)]


def test_both_backends_export_the_same_public_names() -> None:
    torch_names, jax_names = set(mwt.__all__), set(mwj.__all__)
    assert torch_names - jax_names == set(TORCH_ONLY), "undocumented torch-only names"
    assert jax_names - torch_names == set(JAX_ONLY), "undocumented jax-only names"


@pytest.fixture(scope="module")
def reference():
    model_t = mwt.build(SPEC, seed=7, dtype="float64")
    x_t = mwt.random_input((3, *SPEC.input_shape), dtype="float64", seed=8)
    y = np.array([0, 3, 4])
    loss, grads = mwt.value_and_grad(model_t, F.cross_entropy, x_t, torch.as_tensor(y),
                                     method=methods.Backprop())
    model_j = mwj.load_weights(mwj.build(SPEC, seed=0, dtype="float64"),
                               mwt.export_weights(model_t))
    x_j = mwj.random_input((3, *SPEC.input_shape), dtype="float64", seed=8)
    return model_j, x_j, jnp.asarray(y), loss, grads


def test_export_load_roundtrip_keeps_keys_and_layouts(reference) -> None:
    model_j = reference[0]
    exported = mwj.export_weights(model_j)
    assert exported["layers.1.weight"].shape == (4, 4, 3)  # torch's (C_out, C_in, k)
    assert set(exported) == set(mwt.export_weights(mwt.build(SPEC, dtype="float64")))


@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_jax_gradients_equal_torch_backprop_for_every_method(reference, method) -> None:
    model_j, x_j, y_j, loss_t, grads_t = reference
    result = mwj.gradient(model_j, jax_cross_entropy, x_j, y_j, method=method)
    assert rel_error(result.loss, loss_t) < 1e-12
    assert_grads_close(result.grads, grads_t, "float64", f"jax {method} vs torch Backprop")


NETS_2D = {
    "2d_masked": ({"input_shape": [2, 6, 4], "layers": [
        {"type": "stem", "channels": 3, "kernel_size": 3},
        {"type": "conv2d", "kernel_size": 3, "mode": "masked"},
        {"type": "leaky_relu", "negative_slope": 0.3}, {"type": "max_pool", "size": 2},
        {"type": "patch_conv2d", "channels": 3, "patch": 1}, {"type": "relu"},
        {"type": "flatten"}, {"type": "linear", "features": 4}]},
        [methods.Moonwalk(block_size=2), methods.Moonwalk(checkpoint_every=2)]),
    "2d_circular": ({"input_shape": [3, 4, 4], "layers": [
        {"type": "conv2d", "kernel_size": 3, "mode": "circular"},
        {"type": "leaky_relu", "negative_slope": 0.3}, {"type": "avg_pool", "size": 2},
        {"type": "flatten"}, {"type": "linear", "features": 6}]},
        [methods.PureForward(chunk_size=16), methods.NaiveForward()]),
    "revnet": (arch.revnet(2, channels=4, size=4, hidden=3, classes=3).to_dict(),
               [methods.RevBackprop(), methods.Moonwalk()]),
}


@pytest.mark.parametrize("name", list(NETS_2D))
def test_jax_gradients_equal_torch_backprop_on_2d_nets_and_revnets(name: str) -> None:
    description, jax_methods = NETS_2D[name]
    spec = arch.load(description)
    model_t = mwt.build(spec, seed=3, dtype="float64")
    x_t = mwt.random_input((3, *spec.input_shape), dtype="float64", seed=1)
    y = np.array([0, 2, 1])
    loss_t, grads_t = mwt.value_and_grad(model_t, F.cross_entropy, x_t, torch.as_tensor(y),
                                         method=methods.Backprop())
    model_j = mwj.load_weights(mwj.build(spec, dtype="float64"), mwt.export_weights(model_t))
    x_j = mwj.random_input((3, *spec.input_shape), dtype="float64", seed=1)
    for method in jax_methods:
        result = mwj.gradient(model_j, jax_cross_entropy, x_j, jnp.asarray(y), method=method)
        assert rel_error(result.loss, loss_t) < 1e-12
        assert_grads_close(result.grads, grads_t, "float64", f"jax {method} on {name}")


def test_condition_estimates_agree_for_every_layer_case() -> None:
    from .cases import LAYER_CASES

    for case in LAYER_CASES:
        model_t = mwt.build(case.spec(), seed=3, dtype="float64")
        model_j = mwj.load_weights(mwj.build(case.spec(), dtype="float64"),
                                   mwt.export_weights(model_t))
        ref, got = model_t.layers[0].condition(), model_j.layers[0].condition()
        assert set(got) == set(ref), f"{case.name}: keys {sorted(got)} vs {sorted(ref)}"
        for key, value in ref.items():
            assert abs(got[key] - value) <= 1e-10 * abs(value), (case.name, key, got[key], value)
