"""Two of the report's rows queued with DVC's queue, run, and compared with the report."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

from .conftest import run, use_tiny_settings

ROWS = ["network_82_828", "network_84_8153"]  # ADAM and SGDM, the same layers


def test_queue_two_rows_run_them_and_compare(project, sample_url):
    repo, env = project
    use_tiny_settings(repo, sample_url)
    run(["git", "commit", "-qam", "tiny settings"], repo, env)
    queue = [
        sys.executable,
        "-m",
        "imagenette_repro.experiments.queue_rows",
        "queue",
        *ROWS,
        "-S",
        "data.input_size=32",
        "-S",
        "train.max_epochs=1",
        "--run",
        "-j",
        "1",
    ]
    output = run(queue, repo, env)
    assert output.count("dvc exp run --queue") == 2

    again = run(queue, repo, env)  # nothing new to queue
    assert "dvc exp run --queue" not in again
    assert all(f"skip {row}: an experiment with these params exists" in again for row in ROWS)

    run([sys.executable, "-m", "imagenette_repro.report.comparison", "--out", "metrics"], repo, env)
    table = pd.read_csv(repo / "metrics" / "report_comparison.csv")
    assert sorted(table["experiment"]) == ROWS
    # Scaled runs: labelled with what differs, never compared with the published numbers.
    assert not table["is_report_row"].any() and table["report_accuracy"].isna().all()
    assert set(table["settings"]) == {
        "differs: 32 px, 1 epochs max, batch 20, 200 train + 60 val images"
    }
    assert (repo / "metrics" / "report_comparison.png").stat().st_size > 10_000

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env, stdout_only=True))
    recorded = {}
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            rev = experiment["revs"][0]
            evaluation = rev["data"]["metrics"]["metrics/evaluation.json"]["data"]
            recorded[rev["name"]] = evaluation["custom"]["val_folder"]["accuracy"]
    for _, line in table.iterrows():
        assert line["val_folder_accuracy"] == pytest.approx(recorded[line["experiment"]])


def test_rows_in_the_workspace_one_after_another(project, sample_url):
    """--in-workspace: each row a `dvc exp run` in the working tree (no queue), recorded
    by name; the same command again skips the finished rows, whatever params.yaml the
    last run left behind."""
    repo, env = project
    use_tiny_settings(repo, sample_url)
    run(["git", "commit", "-qam", "tiny settings"], repo, env)
    command = [
        sys.executable,
        "-m",
        "imagenette_repro.experiments.queue_rows",
        "queue",
        *ROWS,
        "-S",
        "train.max_epochs=1",
        "--name-suffix",
        "here",
        "--in-workspace",
    ]
    output = run(command, repo, env)
    assert "--queue" not in output
    assert output.count("dvc exp run -n network_") == 2
    names = json.loads(run(["dvc", "exp", "show", "--json"], repo, env, stdout_only=True))
    recorded = {
        experiment["name"] for commit in names for experiment in commit.get("experiments") or []
    }
    assert recorded == {f"{row}-here" for row in ROWS}

    again = run(command, repo, env)  # params.yaml is the last row's now
    assert "dvc exp run" not in again
    assert all(f"skip {row}-here: an experiment with these params exists" in again for row in ROWS)
