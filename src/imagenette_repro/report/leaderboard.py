"""Beyond the report: the from-scratch recipe at 128 px (params.yaml recipes.imagenette_128,
scripts/run_recipe_cpu.sh) beside the report's best row and fastai's Imagenette leaderboard.

    python -m imagenette_repro.report.leaderboard [--runs results/cpu-128px-recipe] [--out DIR]

Reads each run folder below --runs (run.json, exp_show.json, the dvclive curves in
train_custom/), keeps the finished runs of a recipe under the report's protocol, and writes
to --out (default: --runs): runs.csv (one line per run: settings, val-folder and
ILSVRC2012_val accuracy, wall and training minutes, commit) and beyond_the_report.md (the
table against the report and the leaderboard, the recipe's seeds as mean and spread, each
measured comparison against the base run of the same seed and epochs)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..experiments.runs import EVALUATION, exp_show_json, get_dotted, read_runs, recorded_run
from ..files import replacing
from ..params import load_params

REPORT_BEST = ("the report's best row, network_84_8153 (MATLAB, GPU)", 224, "up to 30", 0.8482)
# fastai's Imagenette leaderboard at 128 px (github.com/fastai/imagenette; random init, no
# extra data, no test-time augmentation): each figure named by its row.
LEADERBOARD = [
    (
        "fastai leaderboard, 5-epoch record: fastai2 train_imagenette.py 2020-10"
        " + MaxBlurPool + tuned hyperparameters (mean of 5, GPU)",
        128,
        5,
        0.8743,
    ),
    (
        'fastai leaderboard, an earlier 5-epoch entry: a "mini net" of 4 SE-ResNeXt blocks'
        " (mean of 5, GPU)",
        128,
        5,
        0.8577,
    ),
    (
        "fastai leaderboard, 20-epoch record: fastai2 2020-01 + MaxBlurPool (mean of 5, GPU)",
        128,
        20,
        0.9157,
    ),
]
# Beside every comparison with those rows: the images are the same, their pixels are not.
ARCHIVES = (
    "fastai's rows are measured on imagenette2-320 (aspect ratio kept, short side 320 px);"
    " these runs on imagenette2-224, the same images squashed to 224x224."
)
# What a variant may change: the recipe's own keys (params.yaml recipes.<name>).
COMPARED = (
    "crop_area_min",
    "model",
    "learn_rate",
    "optimizer",
    "schedule",
    "weight_decay",
    "label_smoothing",
)


def seconds_per_image(curves: Path) -> float | None:
    """The sum over epochs of 1 / images/s of the epoch's training pass (dvclive's curve):
    times an epoch's images, the time in training passes."""
    path = curves / "plots" / "metrics" / "train" / "images_per_s.tsv"
    if not path.exists():
        return None
    rows = list(csv.DictReader(io.StringIO(path.read_text()), delimiter="\t"))
    return sum(1 / float(row["images_per_s"]) for row in rows) if rows else None


def collect(folder: Path, committed: dict[str, dict] | None = None) -> pd.DataFrame:
    """One line per recorded run; `as_committed`: its recipe equals `committed` (params.yaml's
    recipes by name; default: this copy's params.yaml)."""
    if committed is None:
        committed = {name: r.model_dump() for name, r in load_params().recipes.items()}
    lines = []
    for record in sorted(folder.glob("*/run.json")):
        made = json.loads(record.read_text())
        # The experiment's own entry under its baseline, or, in earlier records
        # (`dvc exp show --json --rev <experiment>`), its commit as a nameless entry.
        shown = read_runs(exp_show_json(record.parent / "exp_show.json"))
        run = recorded_run(shown, made["experiment"], made.get("commit", ""))
        if run is None:
            continue
        evaluation = run.metrics[EVALUATION]
        accuracy = get_dotted(evaluation, "custom.val_folder.accuracy")
        recipe = (run.params.get("recipes") or {}).get(run.params.get("network"))
        if accuracy is None or recipe is None:
            continue
        images = get_dotted(evaluation, "custom.train.images") or 0
        batch = recipe["batch_size"]
        per_image = seconds_per_image(record.parent / "train_custom")
        lines.append(
            {
                "experiment": made["experiment"],
                "recipe": run.params.get("network"),
                "model": recipe["model"],
                "crop_area_min": recipe["crop_area_min"],
                **{
                    key: recipe.get(key)
                    for key in COMPARED
                    if key not in ("model", "crop_area_min")
                },
                "input_side": get_dotted(run.params, "data.input_size"),
                "epochs": get_dotted(evaluation, "custom.epochs_run"),
                "seed": run.params.get("seed"),
                "val_folder_accuracy": accuracy,
                "imagenet_val_accuracy": get_dotted(
                    evaluation, "custom.val_folder_imagenet_val.accuracy"
                ),
                "precision": get_dotted(evaluation, "custom.precision"),
                "wall_minutes": made["wall_seconds"] / 60,
                # each epoch's images (the last partial batch dropped) / its images/s
                "train_minutes": per_image * (images - images % batch) / 60 if per_image else None,
                "commit": made["commit"][:7],
                "as_committed": recipe == committed.get(run.params.get("network")),
            }
        )
    if not lines:
        raise UserError(f"{folder}: no finished recipe run (run.json and exp_show.json)")
    return pd.DataFrame(lines).sort_values(["epochs", "experiment"])


def _same(a: object, b: object) -> bool:
    return a == b or (pd.isna(a) and pd.isna(b))


def _shown(key: str, value: object) -> str:
    if key == "crop_area_min" and pd.isna(value):
        return "null (the report's scale/shift augmentation)"
    return str(value)


def markdown(runs: pd.DataFrame, machine: str) -> str:
    # The recipe as committed: a run whose recipe keys all equal params.yaml's (read by
    # collect), whatever its name says; any other run is a variant.
    is_base = runs["as_committed"]
    if not is_base.any():
        raise UserError("no run of the recipe as committed in params.yaml")
    base = runs[is_base].iloc[0]
    lines = [
        "# Beyond the report: from scratch at 128 px on a CPU",
        "",
        f"Written by `python -m imagenette_repro.report.leaderboard`; runs on {machine}.",
        "Accuracy on the val folder (3,925 images); ILSVRC: its 134 ILSVRC2012_val images.",
        "",
        "| run | px | epochs | val folder | ILSVRC val | minutes a run |",
        "|---|---|---|---|---|---|",
    ]
    name, side, epochs, accuracy = REPORT_BEST
    lines.append(f"| {name} | {side} | {epochs} | {accuracy:.2%} | | |")
    for name, side, epochs, accuracy in LEADERBOARD:
        lines.append(f"| {name} | {side} | {epochs} | {accuracy:.2%} | | |")
    for epochs, group in runs[is_base].groupby("epochs"):
        label = f"this recipe ({base['model']}), {len(group)} seed{'s' * (len(group) > 1)}"
        accuracy = group["val_folder_accuracy"]
        spread = f" +- {accuracy.std():.2%}" if len(group) > 1 else ""
        minutes = ", ".join(f"{m:.0f}" for m in group["wall_minutes"])
        lines.append(
            f"| {label} | {int(group['input_side'].iloc[0])} | {epochs} | "
            f"{accuracy.mean():.2%}{spread} | {group['imagenet_val_accuracy'].mean():.2%} | "
            f"{minutes} |"
        )
    lines += ["", ARCHIVES]
    lines += [
        "",
        "## Every run",
        "",
        "| experiment | network | crop | lr | epochs | seed | val folder | ILSVRC val |"
        " train min | wall min | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in runs.iterrows():
        crop = "scale/shift" if pd.isna(r["crop_area_min"]) else f"RRC {r['crop_area_min']}"
        train = f"{r['train_minutes']:.1f}" if pd.notna(r["train_minutes"]) else ""
        lines.append(
            f"| {r['experiment']} | {r['model']} | {crop} | {r['learn_rate']} | {r['epochs']} | "
            f"{r['seed']} | {r['val_folder_accuracy']:.2%} | {r['imagenet_val_accuracy']:.2%} | "
            f"{train} | {r['wall_minutes']:.1f} | {r['commit']} |"
        )
    comparisons = []
    for _, r in runs[~is_base].iterrows():
        same = runs[is_base & (runs["seed"] == r["seed"]) & (runs["epochs"] == r["epochs"])]
        if same.empty:
            continue
        changed = [
            f"{key} {_shown(key, base[key])} -> {_shown(key, r[key])}"
            for key in COMPARED
            if not _same(r[key], base[key])
        ]
        delta = r["val_folder_accuracy"] - same["val_folder_accuracy"].iloc[0]
        comparisons.append(
            f"| {'; '.join(changed)} | {r['epochs']} | {r['seed']} | "
            f"{same['val_folder_accuracy'].iloc[0]:.2%} | {r['val_folder_accuracy']:.2%} | "
            f"{delta * 100:+.2f} pp |"
        )
    if comparisons:
        lines += [
            "",
            "## Measured comparisons (each against the recipe, same seed and epochs)",
            "",
            *spread_note(runs[is_base]),
            "| change | epochs | seed | recipe | variant | difference |",
            "|---|---|---|---|---|---|",
            *comparisons,
        ]
    return "\n".join(lines) + "\n"


def spread_note(base_runs: pd.DataFrame) -> list[str]:
    """A line saying each difference is one run against one, and the recipe's seed spread."""
    note = "Each difference is one run against one run (one seed)"
    spreads = [
        f"{group['val_folder_accuracy'].std() * 100:.2f} pp ({len(group)} seeds, {epochs} epochs)"
        for epochs, group in base_runs.groupby("epochs")
        if len(group) > 1
    ]
    if spreads:
        note += (
            f"; the recipe's seeds spread by a sample sd of {', '.join(spreads)}, and a"
            " difference of that size or less is within what the seed alone gives"
        )
    return [note + ".", ""]


def write(runs: pd.DataFrame, out: Path, machine: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with replacing(out / "runs.csv") as tmp:
        runs.to_csv(tmp, index=False, float_format="%.4f")
    with replacing(out / "beyond_the_report.md") as tmp:
        tmp.write_text(markdown(runs, machine))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("results/cpu-128px-recipe"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        runs = collect(args.runs)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    machines = {
        json.loads(path.read_text()).get("cpu", "?") for path in args.runs.glob("*/machine.json")
    }
    write(runs, args.out or args.runs, " / ".join(sorted(machines)))
    print((args.out or args.runs) / "beyond_the_report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
