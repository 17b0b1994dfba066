"""Data parallel Moonwalk in JAX: a batch sharded over two forced host devices under jit gives
the one-device full-batch gradients (float64, 1e-12).

XLA's host device count is fixed when jax is first imported, so the check runs in a fresh
interpreter with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` set before the import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from moonwalk_core import paths

DP_RTOL = 1e-12

SCRIPT = r"""
import json
import equinox as eqx
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import moonwalk_core.jax as mwj
from moonwalk_core import arch, methods

def cross_entropy(logits, y):
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

def rel(a, b):
    num = sum(float(jnp.linalg.norm((a[k] - b[k]).reshape(-1))) ** 2 for k in b)
    den = sum(float(jnp.linalg.norm(b[k].reshape(-1))) ** 2 for k in b)
    return (num / den) ** 0.5

spec = arch.causal_conv_net(2, channels=4, in_channels=2, length=16, patch=4, classes=3)
model = mwj.build(spec, seed=0, dtype="float64")
rng = np.random.default_rng(3)
x = jnp.asarray(rng.standard_normal((8, 2, 16)))
y = jnp.asarray(rng.integers(0, 3, 8))
method = methods.Moonwalk(block_size=4)
mesh = mwj.batch_mesh()
loss_1, grads_1 = mwj.value_and_grad(model, cross_entropy, x, y, method=method)
loss_2, grads_2 = mwj.data_parallel_value_and_grad(model, cross_entropy, x, y, method=method,
                                                   mesh=mesh)
_, backprop = mwj.value_and_grad(model, cross_entropy, x, y, method=methods.Backprop())
# the same inside the user's own jit
step = eqx.filter_jit(lambda m, x, y: mwj.data_parallel_value_and_grad(
    m, cross_entropy, x, y, method=method, mesh=mesh))
_, grads_jit = step(model, x, y)
try:
    mwj.data_parallel_value_and_grad(model, cross_entropy, x[:7], y[:7], mesh=mesh)
    odd_batch = "accepted"
except ValueError as e:
    odd_batch = str(e)
print(json.dumps({
    "devices": len(jax.devices()),
    "mesh_devices": int(mesh.devices.size),
    "grad_devices": len(grads_2["layers.0.weight"].sharding.device_set),
    "loss_diff": abs(float(loss_2) - float(loss_1)) / abs(float(loss_1)),
    "grads_rel": rel(grads_2, grads_1),
    "vs_backprop": rel(grads_2, backprop),
    "jit_rel": rel(grads_jit, grads_1),
    "odd_batch": odd_batch,
}))
"""


def run_two_devices() -> dict:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(paths.ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_host_devices_give_the_full_batch_gradients() -> None:
    out = run_two_devices()
    print(f"two devices vs one: {out}")
    assert out["devices"] == 2 and out["mesh_devices"] == 2
    assert out["grad_devices"] == 2  # replicated on both devices after the all-reduce
    assert out["loss_diff"] < DP_RTOL
    assert out["grads_rel"] < DP_RTOL
    assert out["vs_backprop"] < 1e-10
    assert out["jit_rel"] < DP_RTOL
    assert "does not split evenly over 2 devices" in out["odd_batch"]
