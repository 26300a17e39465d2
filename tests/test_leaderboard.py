"""The 128-px recipe's results beside the report and fastai's leaderboard
(python -m imagenette_repro.report.leaderboard)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from imagenette_repro.experiments.catalogue import apply_overrides
from imagenette_repro.report import leaderboard

from .conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def write_run(
    folder: Path,
    name: str,
    seed: int,
    epochs: int,
    accuracy: float,
    *sets: str,
    earlier: bool = True,
):
    """A run's record as scripts/recorded_exp_run.sh leaves it: run.json, machine.json,
    exp_show.json, dvclive's curve. exp_show.json: `earlier`, `dvc exp show --json --rev`
    (the workspace and the experiment's commit as a nameless entry); else the workspace and
    the baseline commit (with the committed metrics of another run) holding the experiment's
    own entry under its `experiments`."""
    params = apply_overrides(
        PARAMS,
        ["network=imagenette_128", "data.input_size=128", f"seed={seed}", *sets],
    )
    evaluation = {
        "custom": {
            "epochs_run": epochs,
            "precision": "bf16",
            "train": {"images": 9469},
            "val_folder": {"accuracy": accuracy, "images": 3925},
            "val_folder_imagenet_val": {"accuracy": accuracy + 0.01, "images": 134},
        }
    }
    data = {
        "params": {"params.yaml": {"data": params}},
        "metrics": {"metrics/evaluation.json": {"data": evaluation}},
    }
    run = folder / name
    curve = run / "train_custom" / "plots" / "metrics" / "train"
    curve.mkdir(parents=True)
    curve.joinpath("images_per_s.tsv").write_text(
        "step\timages_per_s\n" + "".join(f"{e}\t98.0\n" for e in range(epochs))
    )
    shown = [
        {"rev": "workspace", "name": None, "data": data, "error": None, "experiments": None},
        {"rev": "c" * 40, "name": None, "data": data, "error": None, "experiments": None},
    ]
    if not earlier:
        committed = json.loads(json.dumps(data))  # the baseline's own, older evaluation
        committed["metrics"]["metrics/evaluation.json"]["data"]["custom"]["epochs_run"] = 3
        own = {"rev": "c" * 40, "name": name, "data": data, "error": None, "experiments": None}
        shown[1] = {
            "rev": "d" * 40,
            "name": "main",
            "data": committed,
            "error": None,
            "experiments": [{"revs": [own], "executor": None, "name": name}],
        }
    (run / "exp_show.json").write_text(json.dumps(shown))
    (run / "machine.json").write_text(json.dumps({"cpu": "AMD EPYC (family 26, model 2)"}))
    record = {"experiment": name, "commit": "d" * 40, "wall_seconds": 600 * epochs // 5}
    (run / "run.json").write_text(json.dumps(record))


def test_the_seeds_are_summarised_and_each_variant_set_against_its_seed(tmp_path):
    for seed, accuracy in ((42, 0.86), (43, 0.87), (44, 0.85)):
        write_run(tmp_path, f"imagenette_128-05ep-seed{seed}", seed, 5, accuracy)
    write_run(
        tmp_path,
        "imagenette_128-affine-05ep-seed42",
        42,
        5,
        0.80,
        "recipes.imagenette_128.crop_area_min=null",
    )
    write_run(
        tmp_path,
        "imagenette_128-nolabelsmoothing-05ep-seed43",
        43,
        5,
        0.88,
        "recipes.imagenette_128.label_smoothing=0.0",
    )
    write_run(tmp_path, "imagenette_128-20ep-seed42", 42, 20, 0.92)
    # Named like the recipe, run with other params: a variant, never the recipe's row.
    write_run(
        tmp_path,
        "imagenette_128-10ep-seed42",
        42,
        10,
        0.50,
        "recipes.imagenette_128.crop_area_min=null",
    )
    assert leaderboard.main(["--runs", str(tmp_path)]) == 0
    text = (tmp_path / "beyond_the_report.md").read_text()
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert "84.82%" in rows["| the report's best row, network_84_8153 (MATLAB, GPU)"]
    model = PARAMS["recipes"]["imagenette_128"]["model"]
    five = rows[f"| this recipe ({model}), 3 seeds"]
    assert "| 5 | 86.00% +- 1.00% | 87.00% | 10, 10, 10 |" in five
    assert "| 20 | 92.00% | 93.00% | 40 |" in rows[f"| this recipe ({model}), 1 seed"]
    change = next(line for line in text.splitlines() if line.startswith("| crop_area_min"))
    assert "0.35 -> null (the report's scale/shift augmentation) | 5 | 42 |" in change
    assert change.endswith("| 86.00% | 80.00% | -6.00 pp |")
    change = next(line for line in text.splitlines() if line.startswith("| label_smoothing"))
    assert change.startswith("| label_smoothing 0.1 -> 0.0 | 5 | 43 | 87.00% | 88.00% | +1.00 pp")
    assert not any(line.startswith("| this recipe") and "| 10 |" in line for line in rows.values())
    runs = (tmp_path / "runs.csv").read_text().splitlines()
    assert len(runs) == 8 and runs[0].startswith("experiment,recipe,model")
    # 9,408 images an epoch (147 batches of 64) at 98 img/s: 1.6 min an epoch.
    assert leaderboard.collect(tmp_path)["train_minutes"].iloc[0] == pytest.approx(8.0)


def test_a_folder_without_recipe_runs_is_named(tmp_path, capsys):
    assert leaderboard.main(["--runs", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_records_of_both_shapes_give_the_experiment_not_the_baseline(tmp_path):
    earlier, new = tmp_path / "earlier", tmp_path / "new"
    for folder, is_earlier in ((earlier, True), (new, False)):
        for seed, accuracy in ((42, 0.86), (43, 0.87)):
            name = f"imagenette_128-05ep-seed{seed}"
            write_run(folder, name, seed, 5, accuracy, earlier=is_earlier)
    read = {f.name: leaderboard.collect(f).reset_index(drop=True) for f in (earlier, new)}
    pd.testing.assert_frame_equal(read["earlier"], read["new"])
    assert list(read["new"]["epochs"]) == [5, 5]  # not the baseline's 3
    assert list(read["new"]["val_folder_accuracy"]) == [0.86, 0.87]
