"""JAX-only properties: jax.grad is the oracle, everything jits, and the memory comes from XLA."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import moonwalk_core.jax as mw
from moonwalk_core import arch, methods
from moonwalk_core.jax._runs import Run, find_runs

from .helpers import RTOL, assert_grads_close, rel_error
from .helpers import jax_cross_entropy as cross_entropy


def _data(spec: arch.ArchSpec, batch: int, dtype: str):
    x = mw.random_input((batch, *spec.input_shape), dtype=dtype, seed=1)
    y = jnp.asarray(np.arange(batch) % spec.output_shape[0])
    return x, y


def test_repeated_conv_activation_pairs_form_one_scanned_run() -> None:
    spec = arch.causal_conv_net(4, channels=3, length=16)
    model = mw.build(spec, dtype="float32")
    x, _ = _data(spec, 2, "float32")
    plan = mw.plan_storage(model, methods.Moonwalk(), x)
    runs = find_runs(model.layers, plan, x)
    # stem | (conv, act) x 4 | patch conv, act, flatten, linear
    assert runs[:2] == [Run(0, 1, 1), Run(1, 2, 4)]
    assert sum(r.unit * r.repeats for r in runs) == len(model)


def test_moonwalk_equals_jax_grad_with_blocks_and_checkpoints() -> None:
    spec = arch.causal_conv_net(3, channels=4, length=32, activation="relu", dilation=2)
    model = mw.build(spec, seed=2, dtype="float64")
    x, y = _data(spec, 3, "float64")

    def loss(params):
        return cross_entropy(model.with_parameters(params)(x), y)

    ref = jax.grad(loss)(model.parameters())  # the oracle: JAX's own reverse mode
    result = mw.gradient(model, cross_entropy, x, y,
                         method=methods.Moonwalk(block_size=4, checkpoint_every=2))
    assert_grads_close(result.grads, ref, "float64", "Moonwalk vs jax.grad")
    assert isinstance(result.self_check, float) and result.self_check < RTOL["float64"]
    assert result.info["restart_checks"], "checkpoints every 2 layers give restart checks"


def test_value_and_grad_is_pure_and_jit_compatible() -> None:
    spec = arch.causal_conv_net(2, channels=3, length=16)
    model = mw.build(spec, seed=0, dtype="float64")
    x, y = _data(spec, 2, "float64")
    method = methods.Moonwalk(block_size=4)
    loss, grads = mw.value_and_grad(model, cross_entropy, x, y, method=method)
    jitted = jax.jit(lambda m, a, b: mw.gradient(m, cross_entropy, a, b, method=method))
    result = jitted(model, x, y)
    assert rel_error(result.loss, loss) < 1e-14
    assert_grads_close(result.grads, grads, "float64", "jit vs eager")
    assert result.stored_bytes["total"] > 0 and result.plan  # static parts survive jit
    assert jnp.shape(result.self_check) == ()


def test_moonwalk_compiled_temp_bytes_are_below_a_third_of_jax_grads() -> None:
    spec = arch.causal_conv_net(8, channels=8, length=128)
    model = mw.build(spec, dtype="float32")
    x, y = _data(spec, 4, "float32")
    backprop = mw.compiled_memory(model, cross_entropy, x, y, methods.Backprop())
    moonwalk = mw.compiled_memory(model, cross_entropy, x, y, methods.Moonwalk())
    assert moonwalk["source"] == "XLA compiled memory analysis (temp bytes)"
    ratio = moonwalk["temp_bytes"] / backprop["temp_bytes"]
    assert ratio < 1 / 3, f"Moonwalk temp bytes are {ratio:.2f} of Backprop's"
