"""Each stage's DVC dependencies cover exactly what its code imports.

The import closure here is computed independently of the pipeline's own (``modulefinder`` in
``_manifest.py``): from the syntax tree of the notebook and of every package module it reaches,
imports inside functions included, plus the backend packages the stage selects by name."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml

from moonwalk_core import config, paths

PACKAGE = paths.ROOT / "moonwalk_core"
DVC = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text())["stages"]
BACKENDS = config.load_params()["backends"]
BACKEND_DIRS = {b: PACKAGE / b for b in ("torch", "jax")}


def _module_file(name: str) -> Path | None:
    base = paths.ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports(source: str, module: str | None, is_package: bool) -> set[str]:
    """Package modules named by the import statements of ``source`` (any nesting)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = (module or "").split(".")
                parts = parts if is_package else parts[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {n for n in found if n.split(".")[0] == "moonwalk_core" and _module_file(n)}


def ast_closure(source: str) -> set[Path]:
    """Files of every package module ``source`` reaches, with their parent packages."""
    todo, seen = list(_imports(source, None, False)), set()
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            parent = ".".join(parts[:i])
            if parent in seen:
                continue
            seen.add(parent)
            path = _module_file(parent)
            todo += _imports(path.read_text(), parent, path.name == "__init__.py")
    return {_module_file(n).resolve() for n in seen}


def _notebook_source(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def _stages() -> list[tuple[str, dict, str | None]]:
    out = []
    for name, stage in DVC.items():
        if "matrix" in stage:
            out += [(f"{name}@{b}", stage, b) for b in BACKENDS]
        else:
            out.append((name, stage, None))
    return out


def _expected(name: str, stage: dict, backend: str | None) -> set[Path]:
    """What the stage's code imports: its entry's closure, the runner, selected backends."""
    if name == "check":
        return {p.resolve() for p in PACKAGE.rglob("*.py")}
    if name in ("data", "render", "report"):
        return ast_closure(f"import moonwalk_core.{name}")
    notebook = next(d for d in stage["deps"] if str(d).endswith(".ipynb"))
    found = ast_closure(_notebook_source(paths.ROOT / notebook)
                        + "\nimport moonwalk_core.experiments.__main__")
    selected = [backend] if backend else (["torch", "jax"] if name == "backends" else ["torch"])
    for b in selected:
        found |= {p.resolve() for p in BACKEND_DIRS[b].rglob("*.py")}
    return found


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifests the ``check`` stage writes, in a temporary folder."""
    folder = tmp_path_factory.mktemp("inputs")
    if any("reports/inputs" in str(d) for s in DVC.values() for d in s.get("deps", [])):
        from moonwalk_core.experiments._manifest import write_inputs

        write_inputs(BACKENDS, folder)
    return folder


def _declared(stage: dict, backend: str | None, manifests: Path) -> set[Path]:
    """The package files a stage's DVC deps cover (folders expanded, manifests read)."""
    files: set[Path] = set()
    for dep in stage.get("deps", []):
        dep = str(dep).replace("${item.backend}", backend or "")
        if dep.startswith("reports/inputs/"):
            listed = json.loads((manifests / Path(dep).name).read_text())["files"]
            files |= {(paths.ROOT / f).resolve() for f in listed}
        elif (paths.ROOT / dep).is_dir():
            files |= {p.resolve() for p in (paths.ROOT / dep).rglob("*.py")}
        elif dep.endswith(".py"):
            files.add((paths.ROOT / dep).resolve())
    return {f for f in files if PACKAGE in f.parents}


@pytest.mark.parametrize(("name", "stage", "backend"), _stages(), ids=lambda v: str(v)[:20])
def test_stage_deps_cover_exactly_the_import_closure(name: str, stage: dict,
                                                     backend: str | None,
                                                     manifests: Path) -> None:
    expected, declared = _expected(name, stage, backend), _declared(stage, backend, manifests)
    missing = sorted(p.relative_to(paths.ROOT).as_posix() for p in expected - declared)
    assert not missing, f"stage {name} does not depend on {missing}"
    # nothing beyond the closure, except files of a backend the stage selects anyway
    extra = sorted(p.relative_to(paths.ROOT).as_posix() for p in declared - expected)
    assert not extra, f"stage {name} depends on {extra}, which it never imports"


def test_torch_only_stages_do_not_depend_on_the_jax_backend(manifests: Path) -> None:
    for name, stage, backend in _stages():
        if name in ("check", "backends") or backend == "jax":
            continue
        declared = _declared(stage, backend, manifests)
        assert not [p for p in declared if BACKEND_DIRS["jax"] in p.parents], name


def test_a_new_module_is_a_dependency_as_soon_as_something_imports_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deps are generated from imports: no list to keep by hand."""
    import shutil

    from moonwalk_core.experiments import _manifest

    copy = tmp_path / "repo"
    shutil.copytree(PACKAGE, copy / "moonwalk_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(paths.NOTEBOOKS, copy / "notebooks")
    (copy / "moonwalk_core" / "experiments" / "_new_module.py").write_text("VALUE = 1\n")
    with open(copy / "moonwalk_core" / "experiments" / "_common.py", "a") as f:
        f.write("\nfrom . import _new_module  # noqa: E402,F401\n")
    monkeypatch.setattr(paths, "ROOT", copy)
    monkeypatch.setattr(paths, "NOTEBOOKS", copy / "notebooks")
    files = [p.relative_to(copy).as_posix() for p in _manifest.stage_files("runtime")]
    assert "moonwalk_core/experiments/_new_module.py" in files
    assert not [f for f in files if "/jax/" in f]
