"""Kill the training stage with SIGKILL in the middle, run `dvc repro` again: it resumes
from the last checkpoint and ends with exactly the model of an uninterrupted run (CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import torch
import yaml

from .conftest import run, use_tiny_settings


def test_sigkilled_training_resumes_to_the_uninterrupted_result(project, sample_url):
    repo, env = project
    use_tiny_settings(repo, sample_url)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update(batch_size=10, max_epochs=8)  # long enough to be caught midway
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "-qam", "tiny settings"], repo, env)
    checkpoint = repo / "data" / "checkpoints" / "train_custom.pt"

    repro = subprocess.Popen(
        ["dvc", "repro"],
        cwd=repo,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and repro.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(repro.pid, signal.SIGKILL)  # dvc and the stage's python, mid-training
    repro.wait()
    interrupted_at = torch.load(checkpoint, weights_only=False)["state"]["epoch"]
    assert 1 <= interrupted_at < 8, "the kill came too late to interrupt training"

    output = run(["dvc", "repro"], repo, env)
    assert f"resuming from data/checkpoints/train_custom.pt after epoch {interrupted_at}" in (
        output
    )
    resumed = torch.load(repo / "data" / "models" / "custom.pt", weights_only=False)
    assert resumed["meta"]["epochs_run"] == 8 or resumed["meta"]["stopped_early"]

    # The same training without interruption: no checkpoint, forced re-run.
    checkpoint.unlink()
    output = run(["dvc", "repro", "-f", "-s", "train_custom"], repo, env)
    assert "resuming" not in output
    fresh = torch.load(repo / "data" / "models" / "custom.pt", weights_only=False)
    assert fresh["meta"]["epochs_run"] == resumed["meta"]["epochs_run"]
    assert fresh["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in fresh["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
