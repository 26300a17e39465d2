"""The short view of the experiments (python -m imagenette_repro.runs): 80 columns, the
report's columns and the accuracy, a running experiment's progress."""

from __future__ import annotations

import json

import pytest

from imagenette_repro import runs

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


def running_record(step: int | None) -> list[dict]:
    """A `dvc exp show --json` with one running experiment (no evaluation yet)."""
    params = json.loads(RECORD.read_text())[0]["data"]["params"]
    metrics = {} if step is None else {runs.TRAIN_SUMMARY: {"data": {"step": step}}}
    return [
        {"rev": "workspace", "name": None, "data": {"rev": "workspace", "params": params}},
        {
            "rev": "a" * 40,
            "name": "main",
            "data": {"params": params},
            "experiments": [
                {
                    "name": "still-training",
                    "revs": [
                        {
                            "rev": "b" * 40,
                            "name": "still-training",
                            "data": {"params": params, "metrics": metrics, "status": "Running"},
                        }
                    ],
                }
            ],
        },
    ]


@pytest.mark.parametrize(("step", "shown"), [(4, "5/30"), (None, "runni")])
def test_a_running_experiment_shows_its_epochs_or_its_state(step, shown):
    table = runs.format_table(runs.read_runs(running_record(step)))
    line = next(line for line in table.splitlines() if line.startswith("still-training"))
    assert line.split()[-3:] == [shown, "-", "-"]


def test_an_unreadable_record_is_named(tmp_path, capsys):
    bad = tmp_path / "exp_show.json"
    bad.write_text("{not json")
    assert runs.main(["--input", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
