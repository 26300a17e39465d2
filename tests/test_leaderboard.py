"""The 128-px recipe's results beside the report and fastai's leaderboard
(python -m imagenette_repro.report.leaderboard)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from imagenette_repro.experiments.catalogue import (
    apply_overrides,
    assignments,
    load_catalogue,
    overrides,
)
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
    cpu: str = "AMD EPYC (family 26, model 2)",
    threads: int = 2,
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
    machine = {"cpu": cpu, "cpu_cores": 2, "torch_threads": threads}
    (run / "machine.json").write_text(json.dumps(machine))
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
    # Runs of one recipe: runs.csv's columns as they have always been.
    assert len(runs) == 8 and runs[0] == (
        "experiment,recipe,model,crop_area_min,learn_rate,optimizer,schedule,weight_decay,"
        "label_smoothing,input_side,epochs,seed,val_folder_accuracy,imagenet_val_accuracy,"
        "precision,wall_minutes,train_minutes,commit,as_committed"
    )
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


STEPS = [name for name in load_catalogue() if name.startswith("ablate-")]


def step_sets(profile: str, *more: str) -> list[str]:
    """The -S overrides scripts/run_recipe_cpu.sh gives a run of the profile."""
    return [*assignments(overrides([profile])), *more]


def test_the_ablation_path_in_the_catalogues_order_paired_by_seed(tmp_path):
    assert len(STEPS) >= 5  # the path below: its first, third and last step run
    first, _, third, *_, last = STEPS
    for seed, accuracy in ((42, 0.76), (43, 0.77), (44, 0.75)):  # sd 1.00 pp
        write_run(tmp_path, f"imagenette_128-05ep-seed{seed}", seed, 5, accuracy)
    write_run(tmp_path, f"{first}-05ep-seed42", 42, 5, 0.785, *step_sets(first))
    write_run(tmp_path, f"{third}-05ep-seed42", 42, 5, 0.80, *step_sets(third))
    write_run(tmp_path, f"{third}-05ep-seed43", 43, 5, 0.79, *step_sets(third), cpu="Intel Xeon")
    write_run(tmp_path, f"{last}-05ep-seed45", 45, 5, 0.81, *step_sets(last))
    # Named like a step, trained with another learning rate: not the step, nor a variant
    # of imagenette_128.
    write_run(
        tmp_path,
        f"{third}-05ep-seed44",
        44,
        5,
        0.50,
        *step_sets(third, "recipes.fastai_5ep.learn_rate=0.004"),
    )
    assert leaderboard.main(["--runs", str(tmp_path)]) == 0
    text = (tmp_path / "beyond_the_report.md").read_text()
    section = text[text.index("## The ablation path") :]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [
        "recipe-128px",
        *STEPS,
    ]
    by_step = dict(zip(["recipe-128px", *STEPS], rows, strict=True))
    assert "| 42, 43, 44 | 76.00% +- 1.00 pp |" in by_step["recipe-128px"]
    # The first step against the recipe's seed 42 alone: +2.50 pp, twice the sd is 2.00.
    assert (
        "| 42 | 78.50% | +2.50 pp (paired: seed 42) | beyond the spread (>= 2.00 pp) |"
        in (by_step[first])
    )
    assert "| not run |" in by_step[STEPS[1]]
    assert "| optimizer adamw -> ranger;" in by_step[first]
    # Over the first step (the second has no run), paired on the seed both have.
    assert (
        f"| 42, 43 | 79.50% +- 0.71 pp | +1.50 pp over {first} (paired: seed 42) "
        "| inside the spread (< 2.00 pp) |"
    ) in by_step[third]
    assert "Intel Xeon" in by_step[third]
    # No seed in common with the last step run before it: the difference of the means,
    # unpaired; one run against two is held to 2 sd sqrt((1 + 1/2) / 2) = 1.73 pp.
    assert (
        f"| 45 | 81.00% | +1.50 pp over {third} (unpaired) | inside the spread (< 1.73 pp) |"
    ) in by_step[last]
    assert "sample sd of 1.00 pp (3 seeds)" in section
    assert "smaller than about twice that (2.00 pp) is inside the spread" in section
    assert "These runs come from 2 CPUs" in section
    # fastai_5ep's runs are not variants of imagenette_128.
    assert "## Measured comparisons" not in text
    assert "RRC" not in text.split(f"| {third}-05ep-seed42 |")[1].splitlines()[0]
    path = pd.read_csv(tmp_path / "ablation.csv", dtype={"paired_seeds": str})
    assert list(path["step"]) == ["recipe-128px", *STEPS]
    third_line = path[path["step"] == third].iloc[0]
    assert third_line["gain_pp"] == pytest.approx(1.5)
    assert (third_line["gain_over"], third_line["paired_seeds"]) == (first, "42")
    assert third_line["train_minutes"] == pytest.approx((9469 - 9469 % 32) / 98 / 60 * 5, rel=1e-3)
    assert third_line["train_images_per_s"] == pytest.approx(98.0)
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert {"step", "betas", "input_scaling", "batch_size", "augmentation"} <= set(runs.columns)
    assert runs.set_index("experiment")["step"].get(f"{third}-05ep-seed44") != third
    assert (tmp_path / "accuracy_vs_minutes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_steps_with_no_run_yet_are_listed_and_the_order_is_the_catalogues(tmp_path):
    for seed, accuracy in ((42, 0.76), (43, 0.77)):
        write_run(tmp_path, f"imagenette_128-05ep-seed{seed}", seed, 5, accuracy)
    assert leaderboard.main(["--runs", str(tmp_path)]) == 0
    section = (tmp_path / "beyond_the_report.md").read_text().split("## The ablation path")[1]
    for step in STEPS:
        assert f"| {step} |" in section and section.count("| not run |") == len(STEPS)
    # Another catalogue, its steps in another order: the path follows it.
    text = (ROOT / "experiments.yaml").read_text()
    catalogue = tmp_path / "experiments.yaml"
    blocks = text.split("\n\n")
    path = next(i for i, b in enumerate(blocks) if f"\n{STEPS[0]}:" in f"\n{b}")
    lines = blocks[path].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(STEPS[0]))
    head, profiles = lines[:start], lines[start:]
    starts = [i for i, line in enumerate(profiles) if line and not line.startswith(" ")]
    chunks = [profiles[a:b] for a, b in zip(starts, [*starts[1:], len(profiles)], strict=True)]
    blocks[path] = "\n".join(head + [line for chunk in reversed(chunks) for line in chunk])
    catalogue.write_text("\n\n".join(blocks))
    steps = leaderboard.ablation_steps(catalogue_path=catalogue)
    assert [step.profile for step in steps[1:]] == STEPS[::-1]
    assert steps[-1].adds == leaderboard._comments(ROOT / "experiments.yaml")[STEPS[0]]


def test_a_run_on_fewer_threads_than_cores_says_so_beside_its_minutes(tmp_path):
    first = STEPS[0]
    for seed in (42, 43):
        write_run(tmp_path, f"imagenette_128-05ep-seed{seed}", seed, 5, 0.76)
    write_run(tmp_path, f"{first}-05ep-seed42", 42, 5, 0.785, *step_sets(first), threads=1)
    assert leaderboard.main(["--runs", str(tmp_path)]) == 0
    text = (tmp_path / "beyond_the_report.md").read_text()
    section = text[text.index("## The ablation path") :]
    step = next(line for line in section.splitlines() if line.startswith(f"| {first} |"))
    assert step.endswith("| AMD EPYC (family 26, model 2), 1 of 2 threads |")
    assert "These runs come from 1 CPU (AMD EPYC (family 26, model 2); " in section
    assert "nor between a run on all cores and one beside another." in section
    recipe = next(line for line in section.splitlines() if line.startswith("| recipe-128px |"))
    assert "threads" not in recipe


def test_each_step_names_the_keys_its_profile_changes_the_stores_side_included():
    steps = {step.profile: step for step in leaderboard.ablation_steps()}
    catalogue = load_catalogue(ROOT / "experiments.yaml")
    # The first step switches recipe and sets some keys to the values they had; each
    # later step sets only what it changes.
    for name in STEPS[1:]:
        # recipes.<network>.model_args.act_layer is the recipe's key model_args
        set_keys = {
            key.split(".")[2] if key.startswith("recipes.") else key
            for key in catalogue[name]
            if key not in ("from", "network")
        }
        written = {part.split(" ")[0] for part in steps[name].changed.split("; ") if part}
        assert set_keys <= written, (name, steps[name].changed)
    assert steps["ablate-store"].changed.startswith("data.input_size 128 -> 224; ")
