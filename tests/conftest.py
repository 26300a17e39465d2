"""Shared fixtures: params from the repository, and tiny datasets of real JPEGs."""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from imagenette_repro.data.classes import ENGLISH, WNIDS
from imagenette_repro.models.record import ModelRecord

from . import scratch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def params(repo_params) -> dict:
    return copy.deepcopy(repo_params)


def write_jpeg(path: Path, seed: int, size: int = 40, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, "JPEG")


def run(args: list[str], cwd: Path, env: dict, stdout_only: bool = False) -> str:
    """Run a command; fail the test with its output unless it exits 0."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output}"
    return result.stdout if stdout_only else output


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
    return scratch.copy_repository(tmp_path)


def use_tiny_settings(repo: Path, archive_url: str, googlenet_weights: str = "none") -> dict:
    """params.yaml for a run of seconds: the embedded sample (from archive_url) at 32 px."""
    return scratch.use_tiny_settings(repo, archive_url, googlenet_weights=googlenet_weights)


@pytest.fixture
def sample_url(http_server) -> str:
    """The embedded sample archive, served over HTTP from 127.0.0.1."""
    www, url = http_server
    shutil.copy(ROOT / "sample" / "imagenette2-sample.tgz", www)
    return f"{url}/imagenette2-sample.tgz"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that builds a scratch repository (the `project` fixture) or lives in an
    *_e2e module is an end-to-end test (make test-fast leaves them out)."""
    for item in items:
        if "project" in getattr(item, "fixturenames", ()) or item.path.stem.endswith("_e2e"):
            item.add_marker(pytest.mark.e2e)


def model_record(**fields) -> ModelRecord:
    """A model's record as a train stage writes it, with a one-epoch training filled in;
    `fields` give the network's own."""
    trained = dict(
        classes=list(WNIDS),
        class_names=list(ENGLISH),
        normalization="inside the model",
        train_config={},
        kept_weights="final",
        kept_epoch=1,
        epochs_run=1,
        stopped_early=False,
        best_valid_loss_epoch=1,
        best_valid_accuracy_epoch=1,
    )
    return ModelRecord(**{**trained, **fields})
