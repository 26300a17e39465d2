"""The catalogue of experiments (experiments.yaml) and the one override setter."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imagenette_repro.experiments.catalogue import (
    CatalogueError,
    apply_overrides,
    assignments,
    load_catalogue,
    overrides,
)

from .conftest import ROOT


def test_every_profile_resolves_and_names_only_keys_of_params_yaml():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name in load_catalogue():
        for key in overrides([name]):
            node = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{name}: {key} is not in params"
                node = node[part]


def test_the_sample_profile_holds_the_embedded_sample_and_its_checksum():
    values = overrides(["sample"])
    archive = ROOT / values["data.archive"]
    assert hashlib.md5(archive.read_bytes()).hexdigest() == values["data.md5"]


def test_profiles_start_from_others_and_later_keys_win():
    catalogue = {
        "images": {"data.archive": "sample/a.tgz", "data.md5": "x"},
        "small": {"from": ["images"], "data.input_size": 32, "data.md5": None},
        "big": {"data.input_size": 224},
    }
    assert overrides(["small"], catalogue) == {
        "data.archive": "sample/a.tgz",
        "data.md5": None,
        "data.input_size": 32,
    }
    assert overrides(["small", "big"], catalogue)["data.input_size"] == 224
    absolute = overrides(["small"], catalogue, absolute_to=Path("/repo"))
    assert absolute["data.archive"] == "/repo/sample/a.tgz"
    named = overrides(["images"], {"images": {"data.archive": "imagenette2-320"}}, Path("/r"))
    assert named["data.archive"] == "imagenette2-320"  # a fastai name, not a path


def test_unknown_profiles_and_cycles_are_named():
    with pytest.raises(CatalogueError, match="no profile 'nope'; known: a"):
        overrides(["nope"], {"a": {}})
    with pytest.raises(CatalogueError, match="a -> b -> a is a cycle"):
        overrides(["a"], {"a": {"from": ["b"]}, "b": {"from": ["a"]}})


def test_the_setter_does_what_dvc_exp_run_s_does(tmp_path):
    from dvc.utils.hydra import apply_overrides as dvc_apply

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    values = {"data.md5": None, "data.input_size": 32, "train.keep": "best_loss", "seed": 7}
    values |= {"train.scale_min": 0.001, "train.dropout": False, "learn_rate": 1e-4}
    values |= {"recipes.modern_resnet.model": "resnet18", "data.archive": "/a b/c.tgz"}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    dvc_apply(str(path), assignments(values))
    assert apply_overrides(params, assignments(values)) == yaml.safe_load(path.read_text())


def test_the_command_prints_dvc_arguments(tmp_path):
    command = [sys.executable, "-m", "imagenette_repro.experiments", "recipe-128px"]
    extra = ["--absolute", "--set", "seed=43", "--archive", "other.tgz"]
    printed = subprocess.run(
        command + extra, capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.splitlines()
    assert printed[0::2] == ["-S"] * (len(printed) // 2)
    sets = dict(item.split("=", 1) for item in printed[1::2])
    assert sets["data.archive"] == str(tmp_path / "other.tgz")
    assert sets["data.md5"] == "null" and sets["seed"] == "43"
    assert sets["network"] == "imagenette_128" and sets["data.input_size"] == "128"
    real = overrides(["real-images"])
    same = subprocess.run(
        [*command, "--archive", str(tmp_path / Path(real["data.archive"]).name)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert f"data.md5={real['data.md5']}" in same  # the same archive elsewhere: still checked
    failed = subprocess.run(command[:-1] + ["nope"], capture_output=True, text=True)
    assert failed.returncode == 2 and "no profile 'nope'" in failed.stderr


def test_no_script_repeats_what_the_catalogue_holds():
    md5 = overrides(["real-images"])["data.md5"]
    for path in [*(ROOT / "scripts").iterdir(), *(ROOT / "bench").glob("*.py")]:
        if path.is_file():
            assert md5 not in path.read_text(), f"{path.name} repeats the archive's md5"
