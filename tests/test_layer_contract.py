"""The six contract identities of moonwalk_core.interface for every case and backend."""

from __future__ import annotations

import math

import pytest

from moonwalk_core import get_backend

from .cases import LAYER_CASES, LayerCase
from .helpers import RTOL

BACKENDS = ["torch", "jax"]
DTYPES = ["float64", "float32"]


def _layer_and_input(backend: str, case: LayerCase, dtype: str):
    mw = get_backend(backend)
    model = mw.build(case.spec(), seed=3, dtype=dtype)
    x = mw.random_input((case.batch, *case.input_shape), dtype=dtype, seed=4)
    return model.layers[0], x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c.name)
def test_every_contract_identity_holds(case: LayerCase, backend: str, dtype: str) -> None:
    layer, x = _layer_and_input(backend, case, dtype)
    mw = get_backend(backend)
    tol = RTOL[dtype]
    for block_size in case.block_sizes:
        errors = mw.check_layer(layer, x, block_size=block_size)
        for identity in ("forward_with_residual", "vjp", "vjp_adjoint", "vijp", "param_vjp"):
            assert errors[identity] < tol, (
                f"{case.name} [{backend}, {dtype}, block_size={block_size}]: {identity} error "
                f"{errors[identity]:.3e} >= {tol:.0e}")
        assert errors["fragment_none"] == 0, (
            f"{case.name}: fragment must be None exactly when surjective ({case.surjective})")
        assert layer.surjective == case.surjective
        declared = math.ceil(case.residual_bytes_per_element * math.prod(x.shape))
        assert errors["residual_bytes"] <= declared, (
            f"{case.name}: residual holds {errors['residual_bytes']:.0f} bytes; the layer "
            f"declares {case.residual_bytes_per_element} per input element ({declared})")
