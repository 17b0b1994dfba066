"""The GPU path, checked on the CPU (docs/method.md, 'The FFT solver'; docs/measurement.md,
'Launches and syncs'): the FFT solver is exact, kernel launches per layer do not grow with the
length or the block count, host syncs do not grow with the depth, no tensor is created on a
default device, and the precision flags are restored.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import moonwalk_core.torch as mw
from moonwalk_core import arch, methods
from moonwalk_core.torch._launches import LaunchCounter, count_warm
from moonwalk_core.torch._toeplitz import filter_inverses

from .cases import LAYER_CASES
from .helpers import RTOL, grads_rel_error, rel_error

CAUSAL = [c for c in LAYER_CASES if (c.entry["type"] == "causal_conv1d"
          or c.entry.get("mode") == "masked") and c.entry["kernel_size"] > 1]


@pytest.mark.parametrize("case", CAUSAL, ids=lambda c: c.name)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fft_solve_equals_the_true_cotangent_for_every_block_size(case, dtype) -> None:
    spec = arch.load(case.spec())
    layer = mw.build(spec, seed=1, dtype=dtype).layers[0]
    h_out = mw.random_input((3, *spec.output_shape), dtype=dtype, seed=2)
    if h_out.ndim == 3:
        h_out = h_out.transpose(1, 2).contiguous().transpose(1, 2)  # time-major, as in a net
    length = case.input_shape[-1]
    with torch.no_grad():
        h_in = layer.vjp(None, h_out)
        assert layer.filter_steps(length, None) > 0
        for block_size in case.block_sizes:
            frag = layer.fragment(None, h_out, block_size=block_size)
            inverse = filter_inverses(layer.filter_taps()[None],
                                      layer.filter_steps(length, frag))[0]
            got = layer.vijp(None, h_in, frag, inverse)
            subst = layer.vijp(None, h_in, frag)
            assert rel_error(got, h_out) < RTOL[dtype], block_size
            assert rel_error(got, subst) < RTOL[dtype], block_size


def _net(depth: int, activation: str = "leaky_relu", length: int = 64, channels: int = 8
         ) -> arch.ArchSpec:
    return arch.causal_conv_net(depth, channels=channels, length=length, activation=activation)


def _grads(spec: arch.ArchSpec, method, dtype: str = "float64") -> mw.GradientResult:
    model = mw.build(spec, seed=0, dtype=dtype)
    x = mw.random_input((3, *spec.input_shape), dtype=dtype, seed=1)
    y = torch.tensor([0, 3, 9])
    return mw.gradient(model, F.cross_entropy, x, y, method=method)


@pytest.mark.parametrize("activation", ["leaky_relu", "relu"])
@pytest.mark.parametrize("options", [{}, {"block_size": 16}, {"checkpoint_every": 2},
                                     {"checkpoint_every": "auto"}], ids=str)
def test_fft_solver_gradients_equal_backprop_in_float64(activation, options) -> None:
    spec = _net(4, activation)
    ref = _grads(spec, methods.Backprop()).grads
    result = _grads(spec, methods.Moonwalk(solver="fft", **options))
    assert result.info["solver"] == "fft"
    assert grads_rel_error(result.grads, ref) < RTOL["float64"]


@pytest.mark.parametrize("options", [{}, {"block_size": 3}], ids=str)
def test_fft_solver_gradients_equal_backprop_on_the_masked_conv2d_net(options) -> None:
    # through the engine: the rows' zero-padded buffer is reused across rows and layers
    spec = arch.conv2d_net(3, channels=4, in_channels=2, size=8)
    model = mw.build(spec, seed=0, dtype="float64")
    x = mw.random_input((3, *spec.input_shape), dtype="float64", seed=1)
    y = torch.tensor([0, 3, 9])
    ref = mw.gradient(model, F.cross_entropy, x, y, method=methods.Backprop()).grads
    result = mw.gradient(model, F.cross_entropy, x, y,
                         method=methods.Moonwalk(solver="fft", **options))
    assert result.info["solver"] == "fft"
    assert grads_rel_error(result.grads, ref) < RTOL["float64"]


def test_auto_solver_is_substitution_on_the_cpu_and_fft_elsewhere() -> None:
    assert methods.Moonwalk().solver_for("cpu") == "substitution"
    assert methods.Moonwalk().solver_for("cuda") == "fft"
    assert methods.Moonwalk(solver="substitution").solver_for("cuda") == "substitution"
    with pytest.raises(ValueError, match="solver"):
        methods.Moonwalk(solver="cholesky")


def _count(spec: arch.ArchSpec, method) -> LaunchCounter:
    model = mw.build(spec, seed=0, dtype="float32")
    x = mw.random_input((2, *spec.input_shape), dtype="float32", seed=1)
    y = torch.tensor([1, 2])
    return count_warm(lambda: mw.gradient(model, F.cross_entropy, x, y, method=method))


FFT_METHODS = [methods.Moonwalk(solver="fft"), methods.Moonwalk(solver="fft", block_size=16),
               methods.Moonwalk(solver="fft", checkpoint_every="auto")]


@pytest.mark.parametrize("activation", ["leaky_relu", "relu"])
@pytest.mark.parametrize("method", FFT_METHODS,
                         ids=lambda m: f"b{m.block_size}-{m.checkpoint_every}")
def test_host_syncs_per_gradient_do_not_grow_with_depth(activation, method) -> None:
    shallow, deep = (_count(_net(d, activation), method) for d in (2, 6))
    assert deep.syncs == shallow.syncs <= 4, (shallow.ops, deep.ops)


def test_the_substitution_solver_syncs_per_relu_layer_on_its_own_path() -> None:
    # the CPU path keeps masked_select (no stream to stall): syncs grow with depth there, which
    # is what the counter must be able to see
    method = methods.Moonwalk(solver="substitution")
    shallow, deep = (_count(_net(d, "relu"), method) for d in (2, 6))
    assert deep.syncs == shallow.syncs + 4


def test_fft_launches_do_not_grow_with_the_length_or_the_block_count() -> None:
    method = methods.Moonwalk(solver="fft", block_size=16)
    short, long = (_count(_net(3, length=t), method) for t in (32, 256))
    assert short.launches == long.launches
    # the counter sees the sequential solve's launches grow with the length
    sub = methods.Moonwalk(solver="substitution")
    assert _count(_net(3, length=32), sub).launches + 3 * 200 < _count(
        _net(3, length=256), sub).launches


def test_a_large_batch_shares_the_inverse_filters_doubling_between_layers() -> None:
    # the filters of layers with equal taps' shapes are made in batches that fit in one
    # activation's bytes: one per layer at batch 2 here, shared at batch 256
    method = methods.Moonwalk(solver="fft")
    spec = _net(4)
    counts = {}
    for batch in (2, 256):
        model = mw.build(spec, seed=0, dtype="float32")
        x = mw.random_input((batch, *spec.input_shape), dtype="float32", seed=1)
        y = torch.arange(batch) % 10
        counts[batch] = count_warm(
            lambda m=model, x=x, y=y: mw.gradient(m, F.cross_entropy, x, y, method=method)).ops
    inverses = {batch: ops["aten.linalg_inv_ex.default"] for batch, ops in counts.items()}
    assert inverses[2] == 4 and inverses[256] == 1, inverses


# launches per (causal conv + activation) pair of this small net (T = 64, no blocks), as
# measured: Backprop 6; FFT solver 43 = 20 for the phases and the FFT application + 23 for the
# layer's own inverse filter (a doubling of log2(64) = 6 steps, two products each but the
# last), made per layer because one activation's bytes cannot hold two filters here
# (docs/method.md, 'The FFT solver'). A regression guard: an extra op per layer fails it.
LAUNCHES_PER_LAYER = {"backprop": 6, "fft": 43}


@pytest.mark.parametrize(("name", "method"), [("backprop", methods.Backprop()),
                                              ("fft", methods.Moonwalk(solver="fft"))])
def test_launches_per_layer_stay_within_budget(name, method) -> None:
    a, b = (_count(_net(d, length=64), method) for d in (4, 5))
    assert b.launches - a.launches <= LAUNCHES_PER_LAYER[name], (a.ops, b.ops)


CASES_2D = {"1d_relu": _net(2, "relu", length=16, channels=4),
            "1d_leaky": _net(2, length=16, channels=4),
            "2d_masked": arch.conv2d_net(2, channels=4, in_channels=2, size=8),
            "2d_circular": arch.conv2d_net(2, channels=4, in_channels=2, size=8,
                                           mode="circular"),
            "revnet": arch.revnet(2, channels=4, size=8, hidden=4)}
METHODS = [methods.Backprop(), methods.Checkpointed(segments=2), methods.Moonwalk(),
           methods.Moonwalk(solver="fft"), methods.Moonwalk(block_size=4, solver="fft"),
           methods.Moonwalk(checkpoint_every=2), methods.Moonwalk(checkpoint_every="auto"),
           methods.Moonwalk(checkpoint_every="auto", solver="fft"), methods.RevBackprop(),
           methods.NaiveForward(), methods.PureForward()]


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
@pytest.mark.parametrize("name", list(CASES_2D))
def test_no_tensor_lands_on_the_default_device(name, dtype) -> None:
    """Model and batch on the CPU, default device "meta": any tensor made without an explicit
    device (a leak on a GPU) meets a CPU tensor and raises. bfloat16 takes the solvers' float32
    detours (docs/method.md, 'bfloat16'), which must not leak either."""
    spec = CASES_2D[name]
    model = mw.build(spec, seed=0, dtype=dtype)
    x = mw.random_input((2, *spec.input_shape), dtype=dtype, seed=1)
    y = torch.tensor([0, 1])
    for method in METHODS:
        torch.set_default_device("meta")
        try:
            result = mw.gradient(model, F.cross_entropy, x, y, method=method)
        except ValueError as e:  # a method that refuses this net says so (e.g. RevBackprop)
            assert "meta" not in str(e), (method, e)
            continue
        finally:
            torch.set_default_device(None)
        assert all(g.device.type == "cpu" for g in result.grads.values()), method


def test_ieee_float32_sets_and_restores_the_flags() -> None:
    before = mw.precision_flags()
    with pytest.raises(RuntimeError), mw.ieee_float32() as flags:
        assert not flags["torch.backends.cudnn.allow_tf32"]
        assert not torch.backends.cuda.matmul.allow_tf32
        raise RuntimeError
    assert mw.precision_flags() == before


def test_the_planners_epsilon_follows_the_precision_in_force() -> None:
    f32 = torch.finfo(torch.float32).eps
    with mw.ieee_float32():
        assert mw.working_epsilon(torch.float32, "cuda") == f32
        assert mw.working_epsilon(torch.float32, "cpu") == f32
        torch.backends.cudnn.allow_tf32 = True  # cuDNN's own default: TF32 convolutions
        assert mw.working_epsilon(torch.float32, "cuda:0") == 2.0**-10
        assert mw.working_epsilon(torch.float32, "cpu") == f32  # no TF32 on a CPU
        assert mw.working_epsilon(torch.float64, "cuda") == torch.finfo(torch.float64).eps
        assert mw.working_epsilon(torch.bfloat16, "cuda") == 2.0**-7


def test_the_jax_planners_epsilon_follows_the_precision_in_force() -> None:
    import jax
    import jax.numpy as jnp

    import moonwalk_core.jax as mj

    f32 = float(jnp.finfo(jnp.float32).eps)
    with jax.default_matmul_precision("highest"):
        assert mj.working_epsilon(jnp.float32, "gpu") == f32
    with jax.default_matmul_precision("tensorfloat32"):
        assert mj.working_epsilon(jnp.float32, "gpu") == 2.0**-10
        assert mj.working_epsilon(jnp.float32, "cpu") == f32
        assert mj.working_epsilon(jnp.float64, "gpu") == float(jnp.finfo(jnp.float64).eps)
    if jax.config.jax_default_matmul_precision is None:  # XLA's default on a GPU: TF32-like
        assert mj.working_epsilon(jnp.float32, "gpu") == 2.0**-10


def test_the_torch_planner_plans_with_the_working_epsilon(monkeypatch) -> None:
    from moonwalk_core.torch import _stability

    seen = []
    choose = _stability.choose
    monkeypatch.setattr(_stability, "choose", lambda *a, **k: seen.append(k["eps"]) or choose(
        *a, **k))
    monkeypatch.setattr(_stability, "working_epsilon", lambda dtype, device: 2.0**-10)
    spec = _net(3)
    model = mw.build(spec, seed=0, dtype="float32")
    x = mw.random_input((2, *spec.input_shape), dtype="float32", seed=1)
    _stability.auto_plan(model, methods.Moonwalk(checkpoint_every="auto"), x)
    assert seen == [2.0**-10]


@pytest.mark.parametrize("options", [{}, {"block_size": 16}, {"checkpoint_every": 2}],
                         ids=str)
def test_jax_fft_solver_gradients_equal_backprop_in_float64(options) -> None:
    import jax
    import jax.numpy as jnp

    import moonwalk_core.jax as mj

    from .helpers import batch, jax_cross_entropy

    spec = arch.causal_conv_net(3, channels=6, length=40, dilation=2)
    model = mj.build(spec, seed=0, dtype="float64")
    x, y = batch("jax", spec, 3)
    ref = mj.value_and_grad(model, jax_cross_entropy, x, y, method=methods.Backprop())[1]
    result = mj.gradient(model, jax_cross_entropy, x, y,
                         method=methods.Moonwalk(solver="fft", **options))
    assert grads_rel_error(result.grads, ref) < RTOL["float64"]
    # the compiled Phase III of the FFT solver has no loop over time steps (a GradientResult
    # stays a pytree of arrays under jit, so it names no solver: the lowered program shows it)
    text = jax.jit(lambda m, x, y: mj.value_and_grad(
        m, jax_cross_entropy, x, y, method=methods.Moonwalk(solver="fft", **options))[1]
    ).lower(model, x, y).as_text()
    loops = text.count("stablehlo.while")
    sub = jax.jit(lambda m, x, y: mj.value_and_grad(
        m, jax_cross_entropy, x, y, method=methods.Moonwalk(solver="substitution", **options)
    )[1]).lower(model, x, y).as_text().count("stablehlo.while")
    if "checkpoint_every" not in options:  # (with a checkpoint at every conv nothing solves)
        assert loops < sub, (loops, sub)
    del jnp
