"""The committed dvc.lock is the record of `make sample` at this commit: every stage's
command and code are HEAD's, its params are params.yaml with the sample's settings. Model
and metric hashes are not checked (floating point differs between kinds of CPU)."""

from __future__ import annotations

import yaml

from imagenette_repro.experiments.catalogue import apply_overrides
from imagenette_repro.params import read_yaml
from imagenette_repro.stage_io import file_hash

from . import scratch
from .conftest import ROOT

REFRESH = "refresh it: make sample && git checkout params.yaml, then commit dvc.lock and metrics/"


def expected_stages() -> dict[str, dict]:
    """dvc.yaml's stages with foreach expanded (name@item), as dvc.lock names them."""
    stages = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        if "foreach" not in stage:
            stages[name] = stage
            continue
        for item in stage["foreach"]:
            text = yaml.safe_dump(stage["do"]).replace("${item}", str(item))
            stages[f"{name}@{item}"] = yaml.safe_load(text)
    return stages


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def lock_problems(lock: dict, params: dict) -> list[str]:
    problems = []
    stages = expected_stages()
    if set(lock["stages"]) != set(stages):
        problems.append(f"stages: lock {sorted(lock['stages'])}, dvc.yaml {sorted(stages)}")
    for name, entry in lock["stages"].items():
        if name not in stages:
            continue
        if entry["cmd"] != stages[name]["cmd"]:
            problems.append(f"{name}: cmd {entry['cmd']!r}, dvc.yaml {stages[name]['cmd']!r}")
        code = {dep for dep in stages[name]["deps"] if dep.endswith(".py")}
        recorded = {dep["path"]: dep["md5"] for dep in entry["deps"]}
        for path in sorted(code):
            if path not in recorded:
                problems.append(f"{name}: {path} is not in the lock")
            elif recorded[path] != file_hash(ROOT / path, "md5"):
                problems.append(f"{name}: {path} differs from the committed file")
        for key, value in entry.get("params", {}).get("params.yaml", {}).items():
            if _get(params, key) != value:
                problems.append(f"{name}: param {key} differs")
    return problems


def sample_params() -> dict:
    params = read_yaml((ROOT / "params.yaml").read_text())
    return apply_overrides(params, scratch.sample_overrides())


def test_the_committed_lock_records_heads_code_and_the_sample_params():
    lock = read_yaml((ROOT / "dvc.lock").read_text())  # YAML 1.2 numbers, as DVC reads them
    problems = lock_problems(lock, sample_params())
    assert not problems, "dvc.lock is stale (" + REFRESH + "):\n" + "\n".join(problems)


def test_a_stale_lock_is_found():
    lock = read_yaml((ROOT / "dvc.lock").read_text())
    deps = lock["stages"]["split"]["deps"]
    next(dep for dep in deps if dep["path"] == "stages/split.py")["md5"] = "0" * 32
    lock["stages"]["train_custom"]["params"]["params.yaml"]["learn_rate"] = 1.0
    problems = lock_problems(lock, sample_params())
    assert "split: stages/split.py differs from the committed file" in problems
    assert "train_custom: param learn_rate differs" in problems
