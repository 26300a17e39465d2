"""The short view of the experiments (python -m imagenette_repro.experiments.runs): 80 columns, the
report's columns and the accuracy, a running experiment's progress."""

from __future__ import annotations

import json

import pytest

from imagenette_repro.experiments import runs

from .conftest import ROOT

RECORD = ROOT / "results" / "cpu-32px-val-folder" / "exp_show.json"


def test_a_real_record_fits_80_columns_with_the_report_columns_and_accuracy(capsys):
    assert runs.main(["--input", str(RECORD)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 80
    assert lines[0].split()[:9] == [
        "experiment",
        "net",
        "opt",
        "lr",
        "pat",
        "per",
        "fact",
        "aug",
        "px",
    ]
    glorot = next(line for line in lines if line.startswith("network_84_8153-glor"))
    # The 32-px Glorot run: SGDM row settings, 28 of 30 epochs, 62.68% on the val folder.
    assert glorot.split()[1:] == [
        "84_8153",
        "sgdm",
        "0.001",
        "4",
        "4",
        "0.65",
        "yes",
        "32",
        "28/30",
        "62.68",
        "-",
    ]


def record_with(workspace_metrics: dict, state: str) -> list[dict]:
    """A `dvc exp show --json`: the workspace with `workspace_metrics`, and one experiment
    in executor state `state` that DVC shows with its parent's (finished) metrics."""
    shown = json.loads(RECORD.read_text())
    params, finished = shown[0]["data"]["params"], shown[1]["data"]["metrics"]
    return [
        {
            "rev": "workspace",
            "name": None,
            "data": {"params": params, "metrics": workspace_metrics},
        },
        {
            "rev": "a" * 40,
            "name": "main",
            "data": {"params": params, "metrics": finished},
            "experiments": [
                {
                    "name": "queued-run",
                    "executor": {"state": state},
                    "revs": [
                        {
                            "rev": "b" * 40,
                            "name": "queued-run",
                            "data": {"params": params, "metrics": finished},
                        }
                    ],
                }
            ],
        },
    ]


@pytest.mark.parametrize("state", ["running", "queued"])
def test_a_training_workspace_shows_its_epochs_and_a_queued_run_only_its_state(state):
    training = {runs.TRAIN_SUMMARY: {"data": {"step": 4}}}  # 5 epochs done, no evaluation
    table = runs.format_table(runs.read_runs(record_with(training, state)))
    lines = {line.split()[0]: line.split() for line in table.splitlines()}
    assert lines["workspace"][-3:] == ["5/30", "-", "-"]
    # Not the parent's metrics that DVC shows beside it.
    assert lines["queued-run"][-3:] == [state[:5], "-", "-"]


def test_an_unreadable_record_is_named(tmp_path, capsys):
    bad = tmp_path / "exp_show.json"
    bad.write_text("{not json")
    assert runs.main(["--input", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
