"""One explicit layer contract, the same in both backends.

Every (type, variant) an architecture can name has exactly one final class in each backend and a
case in tests/cases.py; both backends' classes have the same name and declare the same
capabilities; a class that forgets ``condition()`` cannot be instantiated; and the engines use
nothing of a layer that ``moonwalk_core.interface`` does not list.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

from moonwalk_core import arch, get_backend, interface

from .cases import LAYER_CASES
from .helpers import BACKENDS

ROOT = Path(__file__).resolve().parents[1] / "moonwalk_core"


def _registered(backend: str) -> dict[tuple[str, str | None], type]:
    classes = get_backend(backend)._model.LAYER_CLASSES
    return {(t, v): cls for t, by_variant in classes.items() for v, cls in by_variant.items()}


def test_every_architecture_kind_has_a_class_in_both_backends_and_a_test_case() -> None:
    kinds = arch.layer_kinds()
    cases = {(ls.type, ls.variant) for c in LAYER_CASES for ls in arch.load(c.spec()).layers}
    assert set(_registered("torch")) == kinds, "torch registry vs arch.layer_kinds()"
    assert set(_registered("jax")) == kinds, "jax registry vs arch.layer_kinds()"
    assert cases == kinds, f"kinds without a case: {sorted(kinds - cases, key=str)}"


@pytest.mark.parametrize("kind", sorted(arch.layer_kinds(), key=str), ids=str)
def test_both_backends_build_a_kind_with_the_same_final_class(kind) -> None:
    torch_cls, jax_cls = _registered("torch")[kind], _registered("jax")[kind]
    assert torch_cls.__name__ == jax_cls.__name__
    for cls in (torch_cls, jax_cls):
        assert not inspect.isabstract(cls), f"{cls.__name__} leaves {cls.__abstractmethods__}"
        assert (cls.type_name, cls.variant) == kind
        assert isinstance(getattr(cls, "surjective", None), bool), (
            f"{cls.__name__} does not state whether it is surjective")
    for name in interface.CAPABILITIES:
        assert getattr(torch_cls, name) == getattr(jax_cls, name), (kind, name)


def test_case_surjectivity_is_the_class_declaration() -> None:
    for case in LAYER_CASES:
        ls = arch.load(case.spec()).layers[0]
        for backend in BACKENDS:
            assert _registered(backend)[ls.type, ls.variant].surjective == case.surjective


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_layer_class_without_condition_cannot_be_instantiated(backend: str) -> None:
    mw = get_backend(backend)

    class Forgetful(mw.AbstractLayer):  # a plain layer that states everything but condition()
        type_name = "identity"
        surjective = True

        @classmethod
        def from_spec(cls, spec, ctx):
            return cls()

        def _forward(self, x_in):
            return x_in

        def _vjp(self, res, h_out):
            return h_out

    with pytest.raises(TypeError, match="condition"):
        Forgetful()


@pytest.mark.parametrize("backend", BACKENDS)
def test_constructing_a_base_class_builds_the_final_class(backend: str) -> None:
    mw = get_backend(backend)
    rng = np.random.default_rng(0)

    def array(*shape: int):
        return mw.random_input(shape, seed=int(rng.integers(1000)))

    masked = mw.Conv2d(array(2, 2, 3, 3), array(2))
    circular = mw.Conv2d(array(2, 2, 3, 3), array(2), mode="circular")
    assert type(masked) is mw.MaskedConv2d and type(circular) is mw.CircularConv2d
    assert isinstance(circular, mw.Conv2d) and circular.mode == "circular"
    assert type(mw.Stem(array(3, 2, 3), array(3))) is mw.Stem1d
    assert type(mw.Stem(array(3, 2, 3, 3), array(3))) is mw.Stem2d
    with pytest.raises(ValueError, match=r"Conv2d\(mode='diagonal'\)"):
        mw.Conv2d(array(2, 2, 3, 3), array(2), mode="diagonal")
    with pytest.raises(ValueError, match="ExpandingLinear"):
        mw.Linear(array(5, 3), array(5))


# -- the engines use only the interface -------------------------------------------------------
ENGINE_MODULES = ["_stability_plan.py", "_validation.py"] + [
    f"{b}/{m}.py" for b in BACKENDS
    for m in ("_phases", "_moonwalk", "_stability", "_forward_modes", "_revbackprop", "_api")
] + ["jax/_runs.py", "jax/_memory.py"]
BACKEND_MEMBERS = {
    "torch": {"input_halo", "named_parameters"},  # nn.Module's own
    "jax": {"param_names", "parameters", "with_parameters", "replace_static"},
}


def _interface_members() -> set[str]:
    protocols = (interface.Layer, interface.TimeBlockLayer, interface.NegativeUnitsLayer,
                 interface.ReversibleLayer)
    names: set[str] = set()
    for proto in protocols:
        names |= {n for n in vars(proto) if not n.startswith("_")}
        names |= set(getattr(proto, "__annotations__", {}))
    return names


def _layer_attributes(path: Path) -> set[str]:
    """Attributes read on a name ``layer`` or on ``unit[...]`` (a layer of a scanned run)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        value = node.value
        if (isinstance(value, ast.Name) and value.id == "layer") or (
                isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name)
                and value.value.id == "unit"):
            found.add(node.attr)
    return found


def test_the_engine_scan_sees_the_phases_calls() -> None:
    used = set().union(*(_layer_attributes(ROOT / m) for m in ENGINE_MODULES))
    assert {"forward_with_residual", "vjp", "fragment", "vijp", "forward_and_param_vjp",
            "check_weights", "condition", "block_axis", "reversible"} <= used


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_engines_and_planners_use_only_what_the_interface_lists(module: str) -> None:
    backend = module.split("/")[0]
    allowed = _interface_members() | BACKEND_MEMBERS.get(backend, set())
    used = _layer_attributes(ROOT / module)
    assert used <= allowed, f"{module} uses {sorted(used - allowed)}, not in interface.py"


# -- the layer table of docs/layers.md stays true ----------------------------------------------
def _doc_tables() -> list[list[list[str]]]:
    """Every markdown table of docs/layers.md, as rows of cells (header and rule dropped)."""
    tables, current = [], []
    for line in (ROOT.parent / "docs" / "layers.md").read_text().splitlines():
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append(current[2:])
            current = []
    return tables + ([current[2:]] if current else [])


def test_the_layer_table_in_the_docs_matches_the_classes() -> None:
    classes = {cls.__name__: cls for cls in _registered("torch").values()}
    layer_table = next(t for t in _doc_tables() if t and t[0][0] == "`LeakyReLU`")
    rows = {row[0].strip("`"): row for row in layer_table}
    assert set(rows) == set(classes), "docs/layers.md's table vs the registered classes"
    for name, row in rows.items():
        cls = classes[name]
        assert row[2].startswith("yes" if cls.surjective else "no"), (name, row[2])
        assert row[3] == (cls.block_axis or "—"), (name, row[3])
    condition_table = next(t for t in _doc_tables() if t and "amplification" in t[0][1])
    named = {n.strip(" `") for row in condition_table for n in row[0].split(",")}
    assert named == set(classes), "docs/layers.md's condition table vs the registered classes"
