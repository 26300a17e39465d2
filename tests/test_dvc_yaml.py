"""dvc.yaml against the code: each stage depends on every module its script imports, so
that a change to any of them re-runs the stage (and nothing else is re-run needlessly)."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from .conftest import ROOT

PACKAGE = ROOT / "src" / "imagenette_repro"


def package_imports(path: Path) -> set[str]:
    """The modules of imagenette_repro that a file imports directly (anywhere in it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            inside = node.level > 0 or (node.module or "").startswith("imagenette_repro")
            if not inside:
                continue
            module = (node.module or "").removeprefix("imagenette_repro").lstrip(".")
            if module:
                found.add(module.split(".")[0])
            else:  # from . import x / from imagenette_repro import x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("imagenette_repro."):
                    found.add(alias.name.split(".")[1])
    return {name for name in found if (PACKAGE / f"{name}.py").exists()}


def closure(script: Path) -> set[str]:
    """The package's source files a stage script runs, transitively."""
    seen: set[str] = set()
    todo = package_imports(script)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo |= package_imports(PACKAGE / f"{name}.py")
    return {f"src/imagenette_repro/{name}.py" for name in seen}


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
    assert "src/imagenette_repro/architecture.py" in found
    assert "src/imagenette_repro/predict.py" not in found


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
    for script in [*(ROOT / "stages").glob("*.py"), PACKAGE / "training_stage.py"]:
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not node.value.startswith(("data/", "metrics/")), (
                    f"{script.name}: a path of its own, {node.value!r}"
                )
