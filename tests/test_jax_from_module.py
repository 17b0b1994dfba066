"""A user's own Equinox nn.Sequential under Moonwalk: from_module reads the user's arrays, the
gradients come back in eqx.filter_grad's layout (the same training loop with one line changed
ends at jax.grad's parameters, float64), to_module is the inverse, and modules Moonwalk cannot
invert are refused with their position and the reason."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import moonwalk_core.jax as mwj
from moonwalk_core import arch, methods

from .helpers import RTOL, assert_grads_close, assert_rel_close, grads_rel_error

KEY = jax.random.key(0)
MW = methods.Moonwalk(block_size=2)


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def leaky(slope: float) -> eqx.nn.Lambda:
    return eqx.nn.Lambda(functools.partial(jax.nn.leaky_relu, negative_slope=slope))


def net_1d() -> tuple[eqx.nn.Sequential, tuple[int, ...]]:
    k = jax.random.split(KEY, 5)
    return eqx.nn.Sequential([
        eqx.nn.Conv1d(2, 6, 3, padding=((2, 0),), key=k[0]), leaky(0.5),
        eqx.nn.Sequential([eqx.nn.Conv1d(6, 6, 3, dilation=2, padding=((4, 0),),
                                         use_bias=False, key=k[1]),
                           eqx.nn.Identity(), eqx.nn.Lambda(jax.nn.relu)]),
        eqx.nn.MaxPool1d(2, 2),
        eqx.nn.Conv1d(6, 8, 2, stride=2, key=k[2]), eqx.nn.Lambda(jax.nn.leaky_relu),
        eqx.nn.AvgPool1d(2, 2), eqx.nn.Lambda(jnp.ravel), eqx.nn.Linear(16, 5, key=k[3]),
    ]), (2, 16)


def net_2d() -> tuple[eqx.nn.Sequential, tuple[int, ...]]:
    k = jax.random.split(KEY, 6)
    return eqx.nn.Sequential([
        eqx.nn.Conv2d(3, 4, 3, padding=1, key=k[0]), leaky(0.5),
        mwj.RasterMask(eqx.nn.Conv2d(4, 4, 3, padding=1, key=k[1])), eqx.nn.Lambda(jax.nn.relu),
        eqx.nn.Conv2d(4, 4, 3, padding="SAME", padding_mode="CIRCULAR", key=k[2]), leaky(0.5),
        mwj.RasterMask(eqx.nn.Conv2d(4, 4, 2, padding=((1, 0), (1, 0)), key=k[3])),
        eqx.nn.AvgPool2d(2, 2),
        eqx.nn.Conv2d(4, 6, 2, stride=2, key=k[4]),
        eqx.nn.Lambda(jnp.ravel), eqx.nn.Linear(6, 3, key=k[5]),
    ]), (3, 4, 4)


NETS = {"1d": net_1d, "2d": net_2d}


def float64(user: eqx.nn.Sequential) -> eqx.nn.Sequential:
    return jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a,
                        user)


def well_conditioned(user: eqx.nn.Sequential, shape: tuple[int, ...]) -> eqx.nn.Sequential:
    """The user's model with the package's well-conditioned init (build's "orthogonal")."""
    spec = mwj.from_module(user, shape).spec
    fresh = mwj.build(spec, seed=3, dtype="float64").parameters()
    return eqx.combine(mwj.grads_to_module(user, fresh), user)


def batches(shape: tuple[int, ...], classes: int, n: int = 3) -> list[tuple[jax.Array, ...]]:
    rng = np.random.default_rng(1)
    return [(jnp.asarray(rng.standard_normal((4, *shape))),
             jnp.asarray(rng.integers(0, classes, 4))) for _ in range(n)]


def user_loss(user: eqx.nn.Sequential, x: jax.Array, y: jax.Array) -> jax.Array:
    return cross_entropy(jax.vmap(user)(x), y)


autodiff = eqx.filter_jit(eqx.filter_value_and_grad(user_loss))  # the user's jax.grad step


def sgd(user: eqx.nn.Sequential, grads: eqx.nn.Sequential, lr: float = 0.2
        ) -> eqx.nn.Sequential:
    return eqx.apply_updates(user, jax.tree.map(lambda g: -lr * g, grads))


@functools.cache
def make_user(net: str) -> tuple[eqx.nn.Sequential, tuple[int, ...]]:
    user, shape = NETS[net]()
    return well_conditioned(float64(user), shape), shape


@pytest.mark.parametrize("net", NETS)
def test_drop_in_training_ends_at_jax_grads_parameters(net: str) -> None:
    start, shape = make_user(net)
    data = batches(shape, start.layers[-1].out_features)
    ours, ref = start, start
    for x, y in data:
        _, g = mwj.module_value_and_grad(ours, cross_entropy, x, y, method=MW)  # changed line
        ours = sgd(ours, g)
        _, g = autodiff(ref, x, y)
        ref = sgd(ref, g)
    leaves = lambda m: dict(enumerate(jax.tree.leaves(eqx.filter(m, eqx.is_array))))  # noqa: E731
    err = grads_rel_error(leaves(ours), leaves(ref))
    print(f"{net}: parameters after {len(data)} SGD steps, Moonwalk vs jax.grad: {err:.2e}")
    assert err < RTOL["float64"]
    assert grads_rel_error(leaves(ours), leaves(start)) > 1e-3  # the steps moved them


@pytest.mark.parametrize("net", NETS)
def test_gradients_come_back_in_filter_grads_layout(net: str) -> None:
    user, shape = make_user(net)
    x, y = batches(shape, user.layers[-1].out_features, 1)[0]
    loss_ref, ref = autodiff(user, x, y)
    loss, grads = mwj.module_value_and_grad(user, cross_entropy, x, y, method=MW)
    assert jax.tree.structure(grads) == jax.tree.structure(ref)
    assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref),
                                                  strict=True))
    leaves = lambda t: dict(enumerate(jax.tree.leaves(t)))  # noqa: E731
    assert_grads_close(leaves(grads), leaves(ref), "float64", net)
    assert_rel_close(loss, loss_ref, "float64", "loss")
    # the same under the user's own jit
    step = eqx.filter_jit(lambda u, x, y: mwj.module_value_and_grad(u, cross_entropy, x, y,
                                                                    method=MW))
    assert_grads_close(leaves(step(user, x, y)[1]), leaves(ref), "float64", f"{net}, jit")


def test_from_module_uses_the_users_arrays() -> None:
    user, shape = make_user("1d")
    model = mwj.from_module(user, shape)
    x, _ = batches(shape, 5, 1)[0]
    assert_rel_close(model(x), jax.vmap(user)(x), "float64", "forward")
    assert model.parameters()["layers.0.weight"] is user.layers[0].weight
    assert np.all(np.asarray(model.parameters()["layers.2.bias"]) == 0)  # use_bias=False


@pytest.mark.parametrize("spec", [
    arch.load({"input_shape": [2, 4, 4], "layers": [
        {"type": "stem", "channels": 4, "kernel_size": 2},
        {"type": "conv2d", "kernel_size": 3, "mode": "masked"},
        {"type": "leaky_relu", "negative_slope": 0.4},
        {"type": "conv2d", "kernel_size": 2, "mode": "circular"}, {"type": "relu"},
        {"type": "max_pool", "size": 2}, {"type": "patch_conv2d", "channels": 6, "patch": 2},
        {"type": "flatten"}, {"type": "linear", "features": 3}]}),
    arch.causal_conv_net(2, channels=4, in_channels=2, length=16, dilation=2, patch=4,
                         classes=3)], ids=["2d", "1d"])
def test_to_module_is_the_jax_grad_baseline_on_the_same_arrays(spec: arch.ArchSpec) -> None:
    model = mwj.build(spec, seed=0, dtype="float64")
    plain = mwj.to_module(model)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, *spec.input_shape)))
    y = jnp.array([0, 2, 1])
    assert_rel_close(jax.vmap(plain)(x), model(x), "float64", "forward")
    _, ref = autodiff(plain, x, y)
    _, grads = mwj.module_value_and_grad(plain, cross_entropy, x, y, method=MW)
    leaves = lambda t: dict(enumerate(jax.tree.leaves(t)))  # noqa: E731
    assert_grads_close(leaves(grads), leaves(ref), "float64", "Moonwalk vs jax.grad")
    again = mwj.from_module(plain, spec.input_shape)
    assert again.spec.to_dict() == spec.to_dict()
    for k, v in model.parameters().items():
        assert np.array_equal(np.asarray(again.parameters()[k]), np.asarray(v)), k


def conv1(c_in: int = 4, c_out: int = 4, k: int = 3, **kw) -> eqx.nn.Conv1d:
    kw.setdefault("padding", (((k - 1) * kw.get("dilation", 1), 0),))
    return eqx.nn.Conv1d(c_in, c_out, k, key=KEY, **kw)


def conv2(c_in: int = 4, c_out: int = 4, k: int = 3, **kw) -> eqx.nn.Conv2d:
    return eqx.nn.Conv2d(c_in, c_out, k, key=KEY, **kw)


REFUSALS = {  # (modules, input shape, position, what the message must say)
    "expanding conv not the stem": ([conv1(), conv1(4, 8)], (4, 16), "1", "not the stem"),
    "symmetric padding": ([conv1(padding=1)], (4, 16), "0", "symmetric or right padding"),
    "right padding": ([conv1(padding=((2, 1),))], (4, 16), "0", "symmetric or right padding"),
    "same padding": ([conv1(padding="SAME")], (4, 16), "0", "symmetric or right padding"),
    "no padding": ([conv1(padding=0)], (4, 16), "0", "not causal"),
    "circular 1d": ([conv1(padding_mode="CIRCULAR")], (4, 16), "0", "CIRCULAR padding"),
    "stride": ([conv1(stride=2)], (4, 16), "0", "stride=2 with kernel_size=3"),
    "stem dilation": ([conv1(4, 8, dilation=2)], (4, 16), "0", "dilation=2"),
    "narrowing": ([conv1(4, 2)], (4, 16), "0", "narrowing 4 -> 2"),
    "groups": ([conv1(groups=2)], (4, 16), "0", "groups=2"),
    "layer norm": ([eqx.nn.LayerNorm((4, 16))], (4, 16), "0", "normalization"),
    "group norm": ([eqx.nn.GroupNorm(2, 4)], (4, 16), "0", "normalization"),
    "dropout": ([eqx.nn.Dropout(0.1)], (4, 16), "0", "dropout is random"),
    "prelu": ([eqx.nn.PReLU()], (4, 16), "0", "learnable slope"),
    "tanh": ([eqx.nn.Lambda(jnp.tanh)], (4, 16), "0", "no Moonwalk layer for this function"),
    "leaky positional": ([eqx.nn.Lambda(functools.partial(jax.nn.leaky_relu, alpha=1))],
                         (4, 16), "0", "only keyword"),
    "leaky slope 0": ([leaky(0.0)], (4, 16), "0", "must be > 0"),
    "overlapping pool": ([eqx.nn.MaxPool1d(3, 2)], (4, 16), "0", "non-overlapping"),
    "linear before ravel": ([eqx.nn.Linear(16, 3, key=KEY)], (4, 16), "0", "jnp.ravel"),
    "unmasked conv2d": ([conv2(padding=1)], (4, 8, 8), "0", "full .unmasked. conv2d"),
    "masked circular": ([mwj.RasterMask(conv2(padding=1, padding_mode="CIRCULAR"))],
                        (4, 8, 8), "0", "needs zero padding"),
    "dilated conv2d": ([mwj.RasterMask(conv2(padding=2, dilation=2))], (4, 8, 8), "0",
                       "dilation=2"),
    "wrong 2d padding": ([mwj.RasterMask(conv2(padding=2))], (4, 8, 8), "0", "needs"),
    "masked stem": ([mwj.RasterMask(conv2(4, 8, padding=1))], (4, 8, 8), "0", "unmasked"),
    "unknown module": ([eqx.nn.MLP(4, 4, 4, 1, key=KEY)], (4,), "0", "no Moonwalk layer for MLP"),
    "nested position": ([eqx.nn.Sequential([conv1(), eqx.nn.Dropout(0.1)])], (4, 16), "0.1",
                        "dropout"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refuses(case: str) -> None:
    modules, shape, where, why = REFUSALS[case]
    with pytest.raises(ValueError, match=rf"module {where} \(.*\) cannot run under Moonwalk: "
                                         rf"(.|\n)*{why}"):
        mwj.from_module(eqx.nn.Sequential(modules), shape)


def test_refuses_what_is_not_a_float_sequential() -> None:
    with pytest.raises(ValueError, match="expected an eqx.nn.Sequential"):
        mwj.from_module([conv1()], (4, 16))  # type: ignore[arg-type]
    half = jax.tree.map(lambda a: a.astype(jnp.float16) if eqx.is_inexact_array(a) else a,
                        eqx.nn.Sequential([conv1()]))
    with pytest.raises(ValueError, match="float16"):
        mwj.from_module(half, (4, 16))
    with pytest.raises(ValueError, match="revnet_coupling"):
        mwj.to_module(mwj.build(arch.revnet(1, channels=4, size=4, hidden=4)))
