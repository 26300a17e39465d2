"""dvc.yaml against the code: each stage depends on every module its script imports, so
that a change to any of them re-runs the stage (and nothing else is re-run needlessly)."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from .conftest import ROOT

PACKAGE = ROOT / "src" / "imagenette_repro"


def module_file(name: str) -> Path | None:
    """The source file of module `name` (dotted, inside the package), or None."""
    path = PACKAGE.joinpath(*name.split(".")) if name else PACKAGE
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return path / "__init__.py" if (path / "__init__.py").is_file() else None


def package_imports(path: Path) -> set[str]:
    """The modules of imagenette_repro (dotted, below the package) that a file imports
    directly, anywhere in it; `from package import module` counts as that module."""
    inside = path.is_relative_to(PACKAGE)
    here = list(path.relative_to(PACKAGE).parent.parts) if inside else []
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            elif (node.module or "").split(".")[0] == "imagenette_repro":
                module = node.module.removeprefix("imagenette_repro").lstrip(".")
            else:
                continue
            found.add(module)
            found.update(f"{module}.{alias.name}".lstrip(".") for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("imagenette_repro."):
                    found.add(alias.name.removeprefix("imagenette_repro."))
    return {name for name in found if name and module_file(name) is not None}


def closure(script: Path) -> set[str]:
    """The package's source files a stage script runs, transitively; the packages'
    `__init__.py` files are empty (checked below) and left out."""
    seen: set[str] = set()
    todo = package_imports(script)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo |= package_imports(module_file(name))
    files = {module_file(name) for name in seen}
    return {str(f.relative_to(ROOT)) for f in files if f.name != "__init__.py"}


def test_the_packages_init_files_are_empty() -> None:
    """What a stage's deps leave out must hold no code."""
    inits = sorted(PACKAGE.rglob("__init__.py"))
    assert len(inits) >= 7  # the package and its concerns
    assert [str(p.relative_to(ROOT)) for p in inits if p.read_text().strip()] == []


def test_every_stage_depends_on_the_modules_its_script_imports() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    problems = []
    for name, stage in stages.items():
        stage = stage.get("do", stage)  # foreach stages
        [script] = [ROOT / word for word in stage["cmd"].split() if word.startswith("stages/")]
        deps = {dep for dep in stage["deps"] if dep.endswith(".py")}
        needed = closure(script) | {str(script.relative_to(ROOT))}
        if needed - deps:
            problems.append(f"{name}: missing {sorted(needed - deps)}")
        if deps - needed:
            problems.append(f"{name}: needless {sorted(deps - needed)}")
    assert not problems, "\n".join(problems)


def test_the_import_scan_follows_relative_and_absolute_imports(tmp_path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        "from imagenette_repro.params import load_params\n"
        "def f():\n    from imagenette_repro import files\n"
    )
    found = closure(script)
    assert "src/imagenette_repro/files.py" in found
    # params.py imports architecture.py (relative import), which the closure follows.
    assert "src/imagenette_repro/models/architecture.py" in found
    assert "src/imagenette_repro/inference/predict.py" not in found
    # A module named from its package, and the sibling and parent modules it imports.
    script.write_text("from imagenette_repro.train import stage\n")
    found = closure(script)
    assert {"src/imagenette_repro/train/stage.py", "src/imagenette_repro/train/loop.py"} <= found
    assert "src/imagenette_repro/data/batches.py" in found  # from ..data.batches import
    assert "src/imagenette_repro/train/settings.py" not in found


def test_both_models_are_registry_artifacts_made_by_a_stage() -> None:
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    outs = {
        out if isinstance(out, str) else next(iter(out))
        for stage in pipeline["stages"].values()
        for out in stage.get("outs", [])
    }
    artifacts = pipeline["artifacts"]
    assert {a["path"] for a in artifacts.values()} == {
        "data/models/custom.pt",
        "data/models/googlenet.pt",
    }
    for name, artifact in artifacts.items():
        assert artifact["path"] in outs, f"{name}: no stage makes {artifact['path']}"
        assert artifact["type"] == "model" and artifact["desc"] and artifact["labels"]


def test_dvc_yaml_is_the_one_map_of_the_pipelines_files():
    """Every data file a stage reads or writes is named in its cmd (the script takes it
    from there), and no stage script or module it runs writes a path of its own."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        cmd = stage["cmd"]
        files = [
            next(iter(entry)) if isinstance(entry, dict) else entry
            for entry in [*stage.get("deps", []), *stage.get("outs", [])]
        ]
        for path in files:
            if path.startswith(("data/", "metrics/")):
                named = path in cmd or any(path.startswith(f"{w}/") for w in cmd.split())
                assert named, f"{name}: {path} is not named in its cmd"
    for script in [*(ROOT / "stages").glob("*.py"), PACKAGE / "train" / "stage.py"]:
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not node.value.startswith(("data/", "metrics/")), (
                    f"{script.name}: a path of its own, {node.value!r}"
                )
