"""The contract identities of moonwalk_core.interface for every case and backend.

Identity 1 compares the layer's forward with an independent plain-framework forward
(tests/reference.py); the parameter vjp is checked through the jvp inner product
<param_vjp(h), δθ> = <h, J_θ δθ> with the framework's own jvp, so neither oracle runs the code it
checks.
"""

from __future__ import annotations

import math

import pytest

from moonwalk_core import get_backend

from .cases import LAYER_CASES, LayerCase
from .helpers import BACKENDS, RTOL
from .reference import layer_reference

DTYPES = ["float64", "float32"]
IDENTITIES = ("forward_with_residual", "vjp", "vjp_adjoint", "vijp", "param_vjp")


def _layer_and_input(backend: str, case: LayerCase, dtype: str):
    mw = get_backend(backend)
    model = mw.build(case.spec(), seed=3, dtype=dtype)
    x = mw.random_input((case.batch, *case.input_shape), dtype=dtype, seed=4)
    return model, x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c.name)
def test_every_contract_identity_holds(case: LayerCase, backend: str, dtype: str) -> None:
    mw = get_backend(backend)
    model, x = _layer_and_input(backend, case, dtype)
    layer, reference = model.layers[0], layer_reference(model, mw.export_weights)
    tol = RTOL[dtype]
    for block_size in case.block_sizes:
        errors = mw.check_layer(layer, x, block_size=block_size, reference=reference)
        for identity in IDENTITIES:
            assert errors[identity] < tol, (
                f"{case.name} [{backend}, {dtype}, block_size={block_size}]: {identity} error "
                f"{errors[identity]:.3e} >= {tol:.0e}")
        assert errors["param_names"] == 0, (
            f"{case.name} [{backend}]: param_vjp's keys are not exactly the layer's parameters")
        assert errors["fragment_none"] == 0, (
            f"{case.name}: fragment must be None exactly when surjective ({case.surjective})")
        assert layer.surjective == case.surjective
        declared = math.ceil(case.residual_bytes_per_element * math.prod(x.shape))
        assert errors["residual_bytes"] <= declared, (
            f"{case.name}: residual holds {errors['residual_bytes']:.0f} bytes; the layer "
            f"declares {case.residual_bytes_per_element} per input element ({declared})")


@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c.name)
def test_both_backends_name_the_same_parameters(case: LayerCase) -> None:
    names = {b: set(get_backend(b).export_weights(get_backend(b).build(case.spec())))
             for b in BACKENDS}
    assert names["torch"] == names["jax"], case.name
