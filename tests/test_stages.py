"""The stage scripts as DVC runs them: clear one-line errors, exit code 2, nothing left."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import yaml

from .conftest import ROOT
from .scratch import stage_argv


def run_stage(workdir: Path, stage: str, params: dict) -> subprocess.CompletedProcess:
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        stage_argv(stage),
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_bad_params_stop_the_first_stage_before_any_work(tmp_path, params):
    params["optimizer"] = "rmsprop"
    result = run_stage(tmp_path, "download", params)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: params.yaml: 'optimizer' is 'rmsprop'; allowed: sgdm, adam"
    )
    assert not (tmp_path / "data").exists()


def test_offline_download_names_the_url_and_how_to_use_a_local_archive(tmp_path, params):
    url = f"http://127.0.0.1:{free_port()}/imagenette2-320.tgz"  # nothing listens there
    params["data"]["archive"] = url
    result = run_stage(tmp_path, "download", params)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert url in result.stderr and "data.archive" in result.stderr
    assert not (tmp_path / "data" / "raw" / "imagenette").exists()
    assert not (tmp_path / "data" / "raw" / "download.json").exists()


def test_split_names_a_missing_dataset_folder(tmp_path, params):
    result = run_stage(tmp_path, "split", params)
    assert result.returncode == 2
    assert "data/raw/imagenette/train: missing" in result.stderr


def test_pretrained_takes_a_local_weights_file_only_from_the_watched_folder(tmp_path, params):
    from .test_googlenet import make_weights_file

    made, _ = make_weights_file(tmp_path)  # tmp_path/googlenet-<sha>.pth, outside weights/
    params["googlenet"]["weights"] = str(made)
    result = run_stage(tmp_path, "pretrained", params)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"googlenet.weights: {made} is outside weights/" in result.stderr
    assert f"set googlenet.weights to weights/{made.name}" in result.stderr
    assert not (tmp_path / "data" / "pretrained" / "source.json").exists()

    (tmp_path / "weights").mkdir()
    made.rename(tmp_path / "weights" / made.name)
    params["googlenet"]["weights"] = f"weights/{made.name}"
    result = run_stage(tmp_path, "pretrained", params)
    assert result.returncode == 0, result.stderr
    copied = tmp_path / "data" / "pretrained" / "weights.pth"
    assert copied.read_bytes() == (tmp_path / "weights" / made.name).read_bytes()
