"""Shared fixtures: params from the repository, and tiny datasets of real JPEGs."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

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


def use_tiny_settings(repo: Path, archive_url: str, googlenet_weights: str = "none") -> dict:
    """params.yaml for a run of seconds: the embedded sample at 32 px, 1-2 epochs."""
    sample = ROOT / "sample" / "imagenette2-sample.tgz"
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["data"].update(
        archive=archive_url,
        md5=(ROOT / "sample" / "imagenette2-sample.md5").read_text().strip(),
        input_size=32,
    )
    assert sample.exists()
    params["train"].update(batch_size=20, max_epochs=2)
    params["googlenet"].update(weights=googlenet_weights, batch_size=20, max_epochs=1)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


@pytest.fixture
def sample_url(http_server) -> str:
    """The embedded sample archive, served over HTTP from 127.0.0.1."""
    www, url = http_server
    shutil.copy(ROOT / "sample" / "imagenette2-sample.tgz", www)
    return f"{url}/imagenette2-sample.tgz"
