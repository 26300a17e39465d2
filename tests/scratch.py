"""A scratch copy of this repository for real `dvc` runs (tests, the fault matrix, the
benchmark): the working tree's files in a new git repository, and params for a run of
seconds on the embedded sample."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample" / "imagenette2-sample.tgz"
SAMPLE_MD5 = REPO / "sample" / "imagenette2-sample.md5"
LARGEST_FILE = 20 << 20  # bytes: stray large files of a working tree are not copied


def copy_repository(work: Path) -> tuple[Path, dict]:
    """This repository's files as they are in the working tree (tracked and new, not
    ignored) in a new git repository work/project, committed; returns the folder and the
    environment to run git and dvc in (this Python's tools first, no analytics)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    repo = work / "project"
    for name in filter(None, files):
        source = REPO / name
        if source.is_file() and source.stat().st_size < LARGEST_FILE:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),
        "DVC_STUDIO_OFFLINE": "true",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.name", "test"],  # dvc exp reads the identity from config
        ["git", "config", "user.email", "test@example.invalid"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "project"],
    ):
        subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True)
    return repo, env


def sample_overrides(md5: str | None = None) -> list[str]:
    """The `-S key=value` settings of `make sample` (scripts/run_sample.sh), its archive's
    md5 filled in (default: the embedded sample's)."""
    md5 = md5 or SAMPLE_MD5.read_text().split()[0]
    text = (REPO / "scripts" / "run_sample.sh").read_text()
    return [o.replace("$md5", md5) for o in re.findall(r'-S "?([\w.]+=[^"\s]+)"?', text)]


def use_tiny_settings(
    repo: Path,
    archive: str | Path = SAMPLE,
    *,
    md5: str | None = "sample",
    batch_size: int = 20,
    epochs: int = 2,
    googlenet_weights: str = "none",
    init: str = "normal_0.01",
    **changes: object,
) -> dict:
    """params.yaml of `repo` set for a run of seconds: `archive` (default: the embedded
    sample; md5 "sample" is its checksum) at 32 px, `epochs` epochs of the custom network,
    1 of GoogLeNet; `changes` are more params ("section.key": value). Returns the params.
    It sets every key `make sample` sets (scripts/run_sample.sh), so the result is the same
    whether or not the working tree holds the sample's experiment."""
    if md5 == "sample":
        md5 = SAMPLE_MD5.read_text().split()[0]
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["data"].update(archive=str(archive), md5=md5, input_size=32)
    params["train"].update(batch_size=batch_size, max_epochs=epochs, scaled_input=True, init=init)
    params["googlenet"].update(weights=googlenet_weights, batch_size=batch_size, max_epochs=1)
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def commit(repo: Path, env: dict, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", message], cwd=repo, env=env, check=True)
