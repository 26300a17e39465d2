"""The prepared run on a remote GPU host (scripts/gpu_reproduce.sh) smoke-tested on the CPU
with tiny settings, so that it keeps working between GPU runs: the embedded sample cut into
parts as for the commands to the host, put back together and checked, the plan's steps
run through `rows queue` and DVC, the results written after each step."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from imagenette_repro.params import validate

from .conftest import ROOT

pytestmark = pytest.mark.e2e  # whole pipelines in scratch copies

SAMPLE = ROOT / "sample" / "imagenette2-sample.tgz"
SAMPLE_MD5 = (ROOT / "sample" / "imagenette2-sample.md5").read_text().split()[0]


def load_script():
    spec = importlib.util.spec_from_file_location(
        "gpu_reproduce", ROOT / "scripts/gpu_reproduce.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def parts(tmp_path):
    folder = tmp_path / "parts"
    subprocess.run(
        ["bash", "scripts/gpu_data_parts.sh", str(SAMPLE), "1", str(folder)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return folder


def test_the_parts_give_back_the_archive_and_a_bad_part_is_named(parts, tmp_path):
    script = load_script()
    names = sorted(p.name for p in parts.glob("*.part-*"))
    assert len(names) == 3  # 2.5 MB in 1-MiB parts
    whole = script.assemble(parts, SAMPLE.name, tmp_path / SAMPLE.name)
    assert whole.read_bytes() == SAMPLE.read_bytes()
    broken = parts / names[1]
    broken.write_bytes(broken.read_bytes()[:-1] + b"x")
    with pytest.raises(SystemExit, match=f"{names[1]}: sha256 differs"):
        script.assemble(parts, SAMPLE.name, tmp_path / "again.tgz")
    assert not (tmp_path / "again.tgz").exists() and not (tmp_path / "again.tgz.tmp").exists()
    (parts / names[2]).unlink()
    with pytest.raises(SystemExit, match=f"missing {names[2]}"):
        script.assemble(parts, SAMPLE.name, tmp_path / "again.tgz")


def test_the_plan_puts_the_questions_first_and_skips_what_cannot_finish(repo_params):
    script = load_script()
    steps = script.plan(validate(repo_params))
    assert [s.name for s in steps[:5]] == [
        "network_84_8153",
        "network_84_8153-glorot",
        "network_82_828",
        "network_84_8153-noaug",
        "benchmark",
    ]
    # The variants are the catalogue's profiles (experiments.yaml), not spelled again.
    assert steps[1].overrides == ("train.init=glorot",)
    assert steps[3].overrides == ("image_augmentation=false",)
    rest = [repo_params["report_rows"][s.row]["accuracy"] for s in steps[5:]]
    assert len(steps) == 5 + 13 and rest == sorted(rest, reverse=True)
    assert script.fits(100, 0) and script.fits(100, 90) and not script.fits(100, 120)
    assert not script.fits(-1, 0)


def test_the_remote_gpu_run_on_tiny_settings(parts, tmp_path):
    out = tmp_path / "out"
    command = [
        "bash",
        "scripts/gpu_reproduce.sh",
        *("--parts", str(parts), "--name", SAMPLE.name, "--md5", SAMPLE_MD5),
        *("--device", "cpu", "--limit", "500", "--out", str(out), "--work", str(tmp_path)),
        *("-S", "data.input_size=32", "-S", "train.scaled_input=true"),
        *("-S", "train.max_epochs=1", "-S", "train.batch_size=20"),
        *("--steps", "network_84_8153,network_82_828,benchmark"),
        *("--bench-args", "--sizes 32 --batches 2 --step-batches 2 --batch-size 10"),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # At most 8 files, all the remote host returns.
    assert sorted(p.name for p in out.iterdir()) == [
        "benchmark.json",
        "benchmark.md",
        "exp_show.json",
        "gpu_reproduce.log",
        "report_comparison.csv",
        "report_comparison.md",
        "timings.json",
    ]
    timings = json.loads((out / "timings.json").read_text())
    assert [(s["name"], s["status"]) for s in timings["steps"]] == [
        ("network_84_8153", "done"),
        ("network_82_828", "done"),
        ("benchmark", "done"),
    ]
    assert timings["archive"] == SAMPLE.name and timings["total_s"] < 500
    comparison = (out / "report_comparison.md").read_text()
    assert "network_82_828" in comparison and "network_84_8153" in comparison
    assert "differs: 32 px, 1 epochs max, batch 20, 200 train + 60 val images" in comparison
    (measured,) = json.loads((out / "benchmark.json").read_text())["sizes"]
    assert measured["size"] == 32 and measured["epoch_over_baseline"] > 0
    assert "sha256 checked" in (out / "gpu_reproduce.log").read_text()
