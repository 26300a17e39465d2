"""train_custom depends only on what it reads, the short view shows a finished experiment,
and a stage refuses another copy's package: real DVC in a scratch git repository. (A queued
experiment running its own copy's code is a case of the fault matrix, tests/faults.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from .conftest import ROOT, run, use_tiny_settings
from .scratch import stage_argv


def test_another_rows_accuracy_re_runs_evaluate_only_and_the_view_fits_80_columns(
    project, sample_url
):
    repo, env = project
    use_tiny_settings(repo, sample_url)
    run(["git", "commit", "-qam", "tiny settings"], repo, env)
    run(["dvc", "exp", "run", "-n", "adam-run", "-S", "optimizer=adam"], repo, env)
    assert json.loads(run(["dvc", "status", "--json"], repo, env, stdout_only=True)) == {}

    table = run(
        [sys.executable, "-m", "imagenette_repro.experiments.runs"], repo, env, stdout_only=True
    )
    assert max(map(len, table.splitlines())) <= 80
    line = next(line for line in table.splitlines() if line.startswith("adam-run "))
    evaluation = json.loads((repo / "metrics" / "evaluation.json").read_text())
    accuracy = evaluation["custom"]["val_folder"]["accuracy"]
    assert line.split()[2] == "adam" and line.split()[-2] == f"{100 * accuracy:.2f}"

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["report_rows"]["network_64_0764"]["accuracy"] = 0.5
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = json.loads(run(["dvc", "status", "--json"], repo, env, stdout_only=True))
    assert set(changed) == {"evaluate"}, changed
    # A row column of the trained network does re-run it.
    params["drop_period"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = json.loads(run(["dvc", "status", "--json"], repo, env, stdout_only=True))
    assert set(changed) == {"train_custom", "evaluate"}, changed


def test_a_stage_run_with_another_copys_package_stops(project):
    # The scratch copy's stage script with this checkout's package first on the path.
    repo, env = project
    done = subprocess.run(
        stage_argv("split", repo),
        cwd=repo,
        env={**env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "not from its own copy" in done.stderr and "PYTHONPATH=src" in done.stderr
