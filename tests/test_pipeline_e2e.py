"""End to end: the real DVC pipeline in a temporary git repository holding this project,
fed the embedded sample of real Imagenette JPEGs over HTTP from 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT
from .test_googlenet import make_weights_file

STAGES = ("download", "split", "prepare", "train_custom", "finetune_googlenet", "evaluate")


def run(args: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output}"
    return output


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1 at a free port."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(www))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def project(tmp_path):
    """A git repository holding this project's files as they are in the working tree."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    copy = tmp_path / "project"
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(copy / "src"),
        "DVC_STUDIO_OFFLINE": "true",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    run(["git", "init", "-q", "-b", "main"], copy, env)
    run(["git", "config", "user.name", "test"], copy, env)
    run(["git", "config", "user.email", "test@example.invalid"], copy, env)
    run(["git", "add", "-A"], copy, env)
    run(["git", "commit", "-qm", "project"], copy, env)
    return copy, env


def stage_runs(output: str) -> dict[str, bool]:
    """Which stages DVC ran (True) or skipped as unchanged (False)."""
    runs = {}
    for stage in STAGES:
        ran = f"Running stage '{stage}'" in output
        skipped = f"Stage '{stage}' didn't change, skipping" in output
        assert ran != skipped, f"stage {stage}: ran={ran} skipped={skipped}\n{output}"
        runs[stage] = ran
    return runs


def test_repro_then_adam_variant_reruns_only_training_and_evaluation(project, http_server):
    repo, env = project
    www, url = http_server
    sample = ROOT / "sample" / "imagenette2-sample.tgz"
    shutil.copy(sample, www / sample.name)
    weights, _ = make_weights_file(repo.parent)

    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["data"].update(
        archive=f"{url}/{sample.name}",
        md5=hashlib.md5(sample.read_bytes()).hexdigest(),
        input_size=32,
    )
    params["train"].update(batch_size=20, max_epochs=2)
    params["googlenet"].update(weights=str(weights), batch_size=20, max_epochs=1)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "-qam", "tiny settings"], repo, env)

    output = run(["dvc", "repro"], repo, env)
    assert all(stage_runs(output).values())
    first = json.loads((repo / "metrics" / "evaluation.json").read_text())
    assert first["custom"]["network"] == "network_84_8153"
    assert first["custom"]["valid"]["images"] == 60  # 30% of the sample's 200 train images
    assert first["custom"]["test"]["images"] == 60
    assert first["custom"]["test_imagenet_val"]["images"] == 20
    assert first["custom"]["report_accuracy"] == 0.8482
    assert first["googlenet"]["pretrained"] and first["googlenet"]["report_protocol"]
    assert first["googlenet"]["weights"] == f"file:{weights.name}"
    confusion = json.loads((repo / "metrics" / "confusion" / "custom_valid.json").read_text())
    assert len(confusion) == 60 and set(confusion[0]) == {"actual", "predicted"}
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "results"], repo, env)

    output = run(["dvc", "exp", "run", "-S", "optimizer=adam"], repo, env)
    assert stage_runs(output) == {
        "download": False,
        "split": False,
        "prepare": False,
        "train_custom": True,
        "finetune_googlenet": False,
        "evaluate": True,
    }
    assert yaml.safe_load(params_path.read_text())["optimizer"] == "adam"
    second = json.loads((repo / "metrics" / "evaluation.json").read_text())
    assert second["googlenet"] == first["googlenet"]

    diff = json.loads(run(["dvc", "metrics", "diff", "--all", "--json"], repo, env))
    accuracy = diff["metrics/evaluation.json"]["custom.valid.accuracy"]
    assert accuracy["old"] == pytest.approx(first["custom"]["valid"]["accuracy"])
    assert accuracy["new"] == pytest.approx(second["custom"]["valid"]["accuracy"])
    assert "googlenet.valid.accuracy" in diff["metrics/evaluation.json"]
    shown = run(["dvc", "metrics", "diff", "--all", "--md"], repo, env)
    assert "custom.valid.accuracy" in shown
