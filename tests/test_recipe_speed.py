"""bench/recipe_speed.py: the training-step speed of candidate networks for a recipe."""

import json
import subprocess
import sys

from .conftest import ROOT


def test_it_times_the_named_models_and_writes_its_figures(tmp_path):
    out = tmp_path / "speed.json"
    command = [sys.executable, str(ROOT / "bench" / "recipe_speed.py"), "resnet10t"]
    command += ["--side", "32", "--batch", "4", "--steps", "1", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resnet10t:" in done.stdout and "img/s" in done.stdout
    report = json.loads(out.read_text())
    assert set(report["images_per_s"]) == {"resnet10t"} and report["images_per_s"]["resnet10t"] > 0
    assert report["side"] == 32 and report["precision"] in ("fp32", "bf16")
