"""Sharing the DVC way, end to end with real git and real DVC: a run pushed to the project's
default remote (~/dvc-remote/imagenette-repro, as .dvc/config sets it; HOME is the test's
folder), pulled into fresh clones, fetched from the model registry, an experiment handed
between clones, and bad remotes named."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from . import scratch
from .conftest import run

REMOTE = Path("dvc-remote/imagenette-repro")  # .dvc/config: ~/dvc-remote/imagenette-repro
VAL_IMAGES = "data/raw/imagenette/val/n01440764"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def clone(work: Path, name: str, env: dict) -> Path:
    run(["git", "clone", "-q", str(work / "origin.git"), name], work, env)
    for key, value in (("user.name", "test"), ("user.email", "test@example.invalid")):
        run(["git", "config", key, value], work / name, env)
    return work / name


def predict(repo: Path, env: dict, *args: str) -> dict:
    out = run(
        [sys.executable, "-m", "imagenette_repro.inference.predict", "--json", *args, VAL_IMAGES],
        repo,
        env,
        stdout_only=True,
    )
    return json.loads(out)


def share(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """python -m imagenette_repro.experiments.remote (make push / make pull) in `repo`."""
    return subprocess.run(
        [sys.executable, "-m", "imagenette_repro.experiments.remote", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """origin.git (the team's git server), and clone `first` that ran the tiny pipeline,
    committed and pushed its results to git, and its outputs with `dvc push`."""
    work = tmp_path_factory.mktemp("share")
    project, env = scratch.copy_repository(work)
    env["HOME"] = str(work)
    run(["git", "clone", "-q", "--bare", str(project), "origin.git"], work, env)
    first = clone(work, "first", env)
    env = {**env, "PYTHONPATH": str(first / "src")}
    scratch.use_tiny_settings(first)
    run(["dvc", "repro"], first, env)
    run(["git", "add", "-A"], first, env)
    run(["git", "commit", "-qm", "tiny run"], first, env)
    run(["git", "push", "-q", "origin", "main"], first, env)
    run(["dvc", "push"], first, env)
    models = {
        name: md5(first / "data" / "models" / f"{name}.pt") for name in ("custom", "googlenet")
    }
    return work, env, first, models


def test_a_fresh_clone_pulls_the_models_and_predicts_without_training(team):
    work, env, first, models = team
    assert (work / REMOTE / "files" / "md5").is_dir()  # the default remote
    second = clone(work, "second", env)
    assert not (second / "data" / "models" / "custom.pt").exists()
    run(["dvc", "pull"], second, env)
    for name, digest in models.items():
        assert md5(second / "data" / "models" / f"{name}.pt") == digest
    assert json.loads(run(["dvc", "status", "--json"], second, env, stdout_only=True)) == {}
    output = run(["dvc", "repro"], second, env)
    assert "Running stage" not in output and "is cached" not in output, output
    assert predict(second, env) == predict(first, env)
    googlenet = ["--model", "data/models/googlenet.pt"]
    assert predict(second, env, *googlenet) == predict(first, env, *googlenet)


def test_a_model_is_fetched_from_the_registry_by_version(team, tmp_path):
    work, env, first, models = team
    run(["gto", "register", "custom-cnn", "--version", "v1.0.0"], first, env)
    run(["git", "push", "-q", "origin", "custom-cnn@v1.0.0"], first, env)

    # From the team's git server (DVC clones it), the file from the project's remote.
    def get(name: str, *which: str) -> Path:
        out = tmp_path / name
        origin = str(work / "origin.git")
        run(
            ["dvc", "artifacts", "get", origin, "custom-cnn", *which, "-o", str(out)], tmp_path, env
        )
        return out

    assert md5(get("custom.pt", "--rev", "v1.0.0")) == models["custom"]
    run(["gto", "assign", "custom-cnn", "--stage", "prod"], first, env)
    run(["git", "push", "-q", "origin", "custom-cnn#prod#1"], first, env)
    assert md5(get("prod.pt", "--stage", "prod")) == models["custom"]
    fetched = predict(first, env, "--model", str(tmp_path / "custom.pt"))
    assert fetched.pop("model") == str(tmp_path / "custom.pt")
    expected = predict(first, env)
    del expected["model"]
    assert fetched == expected


def test_a_variant_runs_in_a_fresh_clone_pulling_only_what_it_needs_and_moves_on(team):
    work, env, first, models = team
    # The anchor's `dvc exp run --pull --allow-missing`: the stages whose only change is
    # their missing outputs are skipped (the dataset is not downloaded, nor pulled); a stage
    # that must run pulls its inputs from the remote.
    runner = clone(work, "runner", env)
    output = run(
        ["dvc", "exp", "run", "--pull", "--allow-missing", "-n", "adam-row"]
        + ["-S", "optimizer=adam"],
        runner,
        env,
    )
    ran = {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
    assert ran == {"train_custom", "export@custom", "evaluate"}, output
    assert not (runner / "data" / "raw" / "imagenette").exists()
    assert (runner / "data" / "prepared").is_dir()
    trained = md5(runner / "data" / "models" / "custom.pt")
    assert trained != models["custom"]
    shown = run(["dvc", "metrics", "show", "--json"], runner, env, stdout_only=True)
    run(["dvc", "exp", "push", "origin", "adam-row"], runner, env)

    third = clone(work, "third", env)
    assert "adam-row" not in run(["dvc", "exp", "list", "--all-commits"], third, env)
    run(["dvc", "exp", "pull", "origin", "adam-row"], third, env)
    experiments = json.loads(run(["dvc", "exp", "show", "--json"], third, env, stdout_only=True))
    [adam] = [
        exp
        for commit in experiments
        for exp in commit.get("experiments") or []
        if exp["name"] == "adam-row"
    ]
    data = adam["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["optimizer"] == "adam"
    pushed = json.loads(shown)
    [(_, metrics)] = [(k, v) for k, v in pushed.items() if "data" in v]
    assert data["metrics"] == metrics["data"]
    run(["dvc", "exp", "apply", "adam-row"], third, env)  # its model, from the DVC remote
    assert md5(third / "data" / "models" / "custom.pt") == trained
    assert yaml.safe_load((third / "params.yaml").read_text())["optimizer"] == "adam"


def test_bad_remotes_are_named_and_nothing_half_pulled_is_left(team):
    work, env, first, models = team
    fourth = clone(work, "fourth", env)

    def use_remote(url: Path) -> None:
        run(["dvc", "remote", "modify", "--local", "local", "url", str(url)], fourth, env)

    use_remote(work / "nowhere")
    result = share(fourth, env, "pull")
    assert result.returncode == 2
    assert f"dvc remote 'local': folder {work / 'nowhere'} does not exist" in result.stderr
    assert not (fourth / "data" / "models" / "custom.pt").exists()

    (work / "a-file").write_text("in the way")
    use_remote(work / "a-file" / "store")
    result = share(fourth, env, "push")
    assert result.returncode == 2
    assert f"dvc remote 'local': cannot write to {work / 'a-file' / 'store'}" in result.stderr

    # A copy of the remote with one model and one image of a folder output corrupted.
    corrupt = work / "corrupt-remote"
    shutil.copytree(work / REMOTE, corrupt)
    lock = yaml.safe_load((fourth / "dvc.lock").read_text())
    model_md5 = next(
        out["md5"] for out in lock["stages"]["train_custom"]["outs"] if out["path"].endswith(".pt")
    )
    model_object = corrupt / "files" / "md5" / model_md5[:2] / model_md5[2:]
    model_object.write_bytes(b"not the model")
    [raw] = [o["md5"] for o in lock["stages"]["download"]["outs"] if o["md5"].endswith(".dir")]
    image = json.loads((corrupt / "files" / "md5" / raw[:2] / raw[2:]).read_text())[0]
    image_object = corrupt / "files" / "md5" / image["md5"][:2] / image["md5"][2:]
    image_object.write_bytes(image_object.read_bytes()[:100])  # truncated
    use_remote(corrupt)

    result = share(fourth, env, "pull")
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr
    assert f"dvc pull from remote 'local' ({corrupt}): 2 file(s) it cannot give" in message
    assert f"data/models/custom.pt: corrupt on the remote: {model_object} has md5" in message
    assert f"data/raw/imagenette/{image['relpath']}: corrupt on the remote" in message
    # DVC (verify = true) checked out neither output; the others arrived whole.
    assert not (fourth / "data" / "models" / "custom.pt").exists()
    assert not (fourth / "data" / "raw" / "imagenette").exists()
    assert md5(fourth / "data" / "models" / "googlenet.pt") == models["googlenet"]
    left = sorted(p.name for p in (fourth / "data" / "models").iterdir())
    assert left == [".gitignore", "googlenet.pt"]

    use_remote(work / REMOTE)  # the good remote: the pull completes
    result = share(fourth, env, "pull")
    assert result.returncode == 0, result.stderr
    assert md5(fourth / "data" / "models" / "custom.pt") == models["custom"]
