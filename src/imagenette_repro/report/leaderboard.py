"""Beyond the report: the from-scratch recipe at 128 px (params.yaml recipes.imagenette_128,
scripts/run_recipe_cpu.sh) beside the report's best row and fastai's Imagenette leaderboard,
and the path from it to fastai's 5-epoch recipe (experiments.yaml's ablate-* profiles).

    python -m imagenette_repro.report.leaderboard [--runs results/cpu-128px-recipe] [--out DIR]

Reads each run folder below --runs (run.json, exp_show.json, machine.json, the dvclive
curves in train_custom/), keeps the finished runs of a recipe under the report's protocol,
and writes to --out (default: --runs): runs.csv (one line per run: settings, val-folder and
ILSVRC2012_val accuracy, wall and training minutes, commit; a column for a further recipe
key once a run sets it or the runs differ in it, and the ablation step a run measures),
beyond_the_report.md (the table against the report and the leaderboard, the recipe's seeds
as mean and spread, each measured comparison against the base run of the same seed and
epochs, the ablation path step by step), ablation.csv (the path's numbers) and
accuracy_vs_minutes.png (each run's accuracy against its training minutes)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..experiments.catalogue import CATALOGUE, apply_overrides, assignments, load_catalogue
from ..experiments.catalogue import overrides as profile_overrides
from ..experiments.runs import EVALUATION, exp_show_json, get_dotted, read_runs, recorded_run
from ..files import replacing
from ..params import Recipe, load_params, read_yaml

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
# The recipe's other keys, in params.py's order: a column of runs.csv once a run sets one
# that a recipe may leave out, or the runs differ in it.
FURTHER = tuple(key for key in Recipe.model_fields if key not in COMPARED)
OPTIONAL = tuple(key for key, field in Recipe.model_fields.items() if not field.is_required())
# The ablation path: the catalogue's profiles of this prefix, in its order.
ABLATION_PREFIX = "ablate-"


@dataclass(frozen=True)
class Step:
    """A point on the ablation path: a profile of experiments.yaml and what it trains."""

    profile: str
    network: str  # params.yaml's recipe name
    recipe: dict  # the recipe's keys, those it leaves out at their defaults
    epochs: int  # the profile's train.max_epochs
    adds: str  # the profile's comment in experiments.yaml
    changed: str  # the recipe keys it changes from the step before
    store_side: int  # data.input_size: a data key, not a recipe key, but a step may change it


def effective(recipe: dict) -> dict:
    """A recipe with the keys it leaves out at their defaults (what the run trained with)."""
    defaults = {
        key: field.get_default(call_default_factory=True)
        for key, field in Recipe.model_fields.items()
        if not field.is_required()
    }
    full = {**defaults, **recipe}
    return {key: full[key] for key in (*Recipe.model_fields, *full) if key in full}


def _cell(value: object) -> object:
    """A recipe value for a column of runs.csv: lists and mappings as JSON, a float as
    Python writes it (runs.csv's 4 decimals would write eps 1e-06 as 0.0000)."""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value) if isinstance(value, float) else value


def _written(value: object) -> str:
    """A value as params.yaml writes it (null, false, [0.95, 0.99])."""
    if value is None or isinstance(value, (bool, list, dict)):
        return json.dumps(value)
    return str(value)


def _comments(path: Path) -> dict[str, str]:
    """Each top-level profile's comment on its own line of experiments.yaml."""
    found = re.finditer(r"^([\w.-]+):[ \t]*#[ \t]*(.*)$", path.read_text(), re.MULTILINE)
    return {match[1]: match[2].strip() for match in found}


def ablation_steps(
    params_path: Path = Path("params.yaml"), catalogue_path: Path = CATALOGUE
) -> list[Step]:
    """The recipe the path starts from (the first ablate-* profile's `from`), then each
    ablate-* profile in the catalogue's order, resolved on params.yaml."""
    catalogue = load_catalogue(catalogue_path)
    names = [name for name in catalogue if name.startswith(ABLATION_PREFIX)]
    if not names:
        return []
    params = read_yaml(params_path.read_text())
    comments = _comments(catalogue_path)
    base = list(catalogue[names[0]].get("from", []))
    steps: list[Step] = []
    for label, profiles in ((", ".join(base), base), *((name, [name]) for name in names)):
        resolved = apply_overrides(params, assignments(profile_overrides(profiles, catalogue)))
        network = resolved["network"]
        recipe = effective(resolved["recipes"][network])
        store_side = get_dotted(resolved, "data.input_size")
        compared = {"data.input_size": store_side, **recipe}
        before = {"data.input_size": steps[-1].store_side, **steps[-1].recipe} if steps else {}
        changed = "; ".join(
            f"{key} {_written(before[key])} -> {_written(value)}"
            for key, value in compared.items()
            if before and before.get(key) != value
        )
        steps.append(
            Step(
                profile=label,
                network=network,
                recipe=recipe,
                epochs=get_dotted(resolved, "train.max_epochs"),
                adds=comments.get(label, f"the recipe {network} as committed"),
                changed=changed,
                store_side=store_side,
            )
        )
    return steps


def seconds_per_image(curves: Path) -> float | None:
    """The sum over epochs of 1 / images/s of the epoch's training pass (dvclive's curve):
    times an epoch's images, the time in training passes."""
    path = curves / "plots" / "metrics" / "train" / "images_per_s.tsv"
    if not path.exists():
        return None
    rows = list(csv.DictReader(io.StringIO(path.read_text()), delimiter="\t"))
    return sum(1 / float(row["images_per_s"]) for row in rows) if rows else None


def _epochs_timed(curves: Path) -> int:
    path = curves / "plots" / "metrics" / "train" / "images_per_s.tsv"
    return len(path.read_text().strip().splitlines()) - 1 if path.exists() else 0


def collect(
    folder: Path, committed: dict[str, dict] | None = None, steps: list[Step] | None = None
) -> pd.DataFrame:
    """One line per recorded run; `as_committed`: its recipe equals `committed` (params.yaml's
    recipes by name; default: this copy's params.yaml); `step`: the ablate-* profile whose
    recipe it trained (`steps`, default: ablation_steps()), else empty."""
    if committed is None:
        committed = {name: r.model_dump() for name, r in load_params().recipes.items()}
    if steps is None:
        steps = ablation_steps()
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
        network = run.params.get("network")
        recipe = (run.params.get("recipes") or {}).get(network)
        if accuracy is None or recipe is None:
            continue
        full = effective(recipe)
        images = get_dotted(evaluation, "custom.train.images") or 0
        batch = recipe["batch_size"]
        curves = record.parent / "train_custom"
        per_image = seconds_per_image(curves)
        machine = record.parent / "machine.json"
        step = next(
            (s.profile for s in steps[1:] if s.network == network and s.recipe == full), None
        )
        lines.append(
            {
                "experiment": made["experiment"],
                "recipe": network,
                "model": recipe["model"],
                "crop_area_min": recipe["crop_area_min"],
                **{
                    key: recipe.get(key)
                    for key in COMPARED
                    if key not in ("model", "crop_area_min")
                },
                **{key: _cell(full[key]) for key in FURTHER},
                # the network's side; the stored images' when larger (crops, resizes)
                "input_side": recipe.get("train_size") or get_dotted(run.params, "data.input_size"),
                "store_side": get_dotted(run.params, "data.input_size"),
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
                "as_committed": recipe == committed.get(network),
                "step": step,
                "set_keys": ",".join(key for key in OPTIONAL if key in recipe),
                "cpu": machine_label(machine) if machine.exists() else None,
                # the harmonic mean over epochs: the training images over the training time
                "train_images_per_s": _epochs_timed(curves) / per_image if per_image else None,
            }
        )
    if not lines:
        raise UserError(f"{folder}: no finished recipe run (run.json and exp_show.json)")
    return pd.DataFrame(lines).sort_values(["epochs", "experiment"])


def machine_label(path: Path) -> str:
    """The CPU of a run's machine.json, with the threads it trained on where fewer than the
    cores (a run beside another on the same machine: its minutes are not the machine's)."""
    machine = json.loads(path.read_text())
    label = machine.get("cpu", "?")
    threads, cores = machine.get("torch_threads"), machine.get("cpu_cores")
    if threads and cores and threads < cores:
        label += f", {threads} of {cores} threads"
    return label


def csv_columns(runs: pd.DataFrame) -> list[str]:
    """runs.csv's columns: a further recipe key only where a run sets one a recipe may leave
    out or the runs differ in it, `step` only where a run is on the ablation path, the
    store's side only where a run's is larger than its network's (so runs of one recipe
    read as they always have)."""
    set_keys = {key for keys in runs["set_keys"] for key in keys.split(",") if key}
    shown = [
        key for key in FURTHER if key in set_keys or runs[key].astype(str).nunique(dropna=False) > 1
    ]
    hidden = {*FURTHER, "step", "set_keys", "cpu", "train_images_per_s"} - set(shown)
    if runs["step"].notna().any():
        hidden.discard("step")
    if (runs["store_side"] == runs["input_side"]).all():
        hidden.add("store_side")
    return [column for column in runs.columns if column not in hidden]


def _same(a: object, b: object) -> bool:
    return a == b or (pd.isna(a) and pd.isna(b))


def _shown(key: str, value: object) -> str:
    if key == "crop_area_min" and pd.isna(value):
        return "null (the report's scale/shift augmentation)"
    return str(value)


def _crop(run: pd.Series) -> str:
    if not run["augmentation"]:
        return "flips only" if run["reflection"] else "none"
    return "scale/shift" if pd.isna(run["crop_area_min"]) else f"RRC {run['crop_area_min']}"


def markdown(runs: pd.DataFrame, machine: str, steps: list[Step] | None = None) -> str:
    if steps is None:
        steps = ablation_steps()
    base_recipe = steps[0].network if steps else runs["recipe"].iloc[0]
    # The recipe as committed: a run whose recipe keys all equal params.yaml's (read by
    # collect), whatever its name says; any other run of the recipe is a variant, and runs
    # of other recipes are read against their own (the ablation path).
    is_base = runs["as_committed"] & (runs["recipe"] == base_recipe)
    if not is_base.any():
        raise UserError(f"no run of the recipe {base_recipe} as committed in params.yaml")
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
    others = runs["as_committed"] & ~is_base
    for (recipe, epochs), group in pd.concat(
        [runs[is_base], runs[others].sort_values(["recipe", "epochs"])]
    ).groupby(["recipe", "epochs"], sort=False):
        label = "this recipe" if recipe == base_recipe else f"the recipe {recipe}"
        label += f" ({group['model'].iloc[0]}), {len(group)} seed{'s' * (len(group) > 1)}"
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
        train = f"{r['train_minutes']:.1f}" if pd.notna(r["train_minutes"]) else ""
        lines.append(
            f"| {r['experiment']} | {r['model']} | {_crop(r)} | {r['learn_rate']} | "
            f"{r['epochs']} | {r['seed']} | {r['val_folder_accuracy']:.2%} | "
            f"{r['imagenet_val_accuracy']:.2%} | {train} | {r['wall_minutes']:.1f} | "
            f"{r['commit']} |"
        )
    comparisons = []
    for _, r in runs[~is_base & (runs["recipe"] == base_recipe)].iterrows():
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
    if steps:
        lines += ablation_markdown(ablation(runs, steps))
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


def _gain(before: pd.DataFrame, after: pd.DataFrame) -> tuple[float, list[int], int, int]:
    """after's accuracy less before's: over the seeds both have (paired: the mean of the
    per-seed differences), else the difference of the means; the seeds paired (none:
    unpaired) and the numbers of values set against each other."""
    a = before.groupby("seed")["val_folder_accuracy"].mean()
    b = after.groupby("seed")["val_folder_accuracy"].mean()
    shared = sorted(set(a.index) & set(b.index))
    if shared:
        return float((b[shared] - a[shared]).mean()), shared, len(shared), len(shared)
    return float(b.mean() - a.mean()), [], len(a), len(b)


def ablation(runs: pd.DataFrame, steps: list[Step]) -> pd.DataFrame:
    """One line per epochs and step of the path (the first: the recipe as committed): its
    runs' seeds, accuracy (mean, sample sd), the gain over the nearest step before it that
    has runs, that gain against the recipe's seed spread, minutes, images/s, CPUs."""
    base, path = steps[0], steps[1:]
    is_base = runs["as_committed"] & (runs["recipe"] == base.network)
    measured = sorted(set(runs.loc[runs["step"].notna(), "epochs"]))
    lines = []
    for epochs in measured or sorted({step.epochs for step in path}):
        at = runs["epochs"] == epochs
        base_runs = runs[is_base & at]
        sd = base_runs["val_folder_accuracy"].std() if len(base_runs) > 1 else math.nan
        before: tuple[str, pd.DataFrame] | None = None
        for step in steps:
            group = base_runs if step is base else runs[at & (runs["step"] == step.profile)]
            line: dict[str, object] = {
                "epochs": epochs,
                "step": step.profile,
                "network": step.network,
                "model": step.recipe["model"],
                "adds": step.adds,
                "changed": step.changed,
                "runs": len(group),
                "seeds": " ".join(str(s) for s in sorted(group["seed"])),
                "val_folder_accuracy": group["val_folder_accuracy"].mean(),
                "val_folder_accuracy_sd": group["val_folder_accuracy"].std(),
                "gain_pp": math.nan,
                "gain_over": "",
                "paired_seeds": "",
                "spread_threshold_pp": math.nan,
                "inside_spread": None,
                "train_minutes": group["train_minutes"].mean(),
                "train_images_per_s": group["train_images_per_s"].mean(),
                "wall_minutes": group["wall_minutes"].mean(),
                "cpu": " / ".join(sorted(group["cpu"].dropna().unique())),
                "experiments": " ".join(group["experiment"]),
            }
            if not group.empty and before is not None:
                gain, shared, n_a, n_b = _gain(before[1], group)
                # Twice the seed sd for one run against one; for a runs against b (or
                # n pairs) the sd of the difference shrinks by sqrt((1/a + 1/b) / 2).
                threshold = 2 * sd * math.sqrt((1 / n_a + 1 / n_b) / 2)
                line |= {
                    "gain_pp": 100 * gain,
                    "gain_over": before[0],
                    "paired_seeds": " ".join(map(str, shared)),
                    "spread_threshold_pp": 100 * threshold,
                    "inside_spread": None if math.isnan(sd) else bool(abs(gain) < threshold),
                }
            if not group.empty:
                before = (step.profile, group)
            lines.append(line)
    return pd.DataFrame(lines)


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if pd.notna(value) else ""


def ablation_markdown(path: pd.DataFrame) -> list[str]:
    """The ablation path's section of beyond_the_report.md."""
    lines = [
        "",
        "## The ablation path: from this recipe to fastai's 5-epoch recipe",
        "",
        "One ingredient at a time, in the order of experiments.yaml's ablate-* profiles"
        " (`SEED=N PROFILE=<step> bash scripts/run_recipe_cpu.sh 5`); each step keeps the"
        " ones before it. A run counts for a step when its recipe equals the profile's on"
        " params.yaml. Accuracy: the val folder, mean +- sample sd over seeds; gain: over"
        " the step before (or the nearest one before it that has runs, named), paired by"
        " seed where both have the seed.",
    ]
    name, _, epochs_record, record = LEADERBOARD[0]
    for epochs, rows in path.groupby("epochs", sort=True):
        lines += [
            "",
            f"### {epochs} epochs",
            "",
            "| step | adds | recipe keys changed | seeds | val folder | gain | against the"
            " spread | train min | img/s | wall min | CPU |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        previous = None
        for _, r in rows.iterrows():
            if not r["runs"]:
                lines.append(
                    f"| {r['step']} | {r['adds']} | {r['changed']} | not run | | | | | | | |"
                )
                previous = r["step"]
                continue
            accuracy = f"{r['val_folder_accuracy']:.2%}"
            if r["runs"] > 1:
                accuracy += f" +- {100 * r['val_folder_accuracy_sd']:.2f} pp"
            gain = verdict = ""
            if pd.notna(r["gain_pp"]):
                paired = r["paired_seeds"].split()
                how = (
                    f"paired: seed{'s' * (len(paired) > 1)} {', '.join(paired)}"
                    if paired
                    else "unpaired"
                )
                over = f" over {r['gain_over']}" if r["gain_over"] != previous else ""
                gain = f"{r['gain_pp']:+.2f} pp{over} ({how})"
                if pd.notna(r["inside_spread"]):
                    threshold = r["spread_threshold_pp"]
                    verdict = (
                        f"inside the spread (< {threshold:.2f} pp)"
                        if r["inside_spread"]
                        else f"beyond the spread (>= {threshold:.2f} pp)"
                    )
            seeds = ", ".join(r["seeds"].split())
            lines.append(
                f"| {r['step']} | {r['adds']} | {r['changed']} | {seeds} | {accuracy} | {gain}"
                f" | {verdict} | {_number(r['train_minutes'], 1)} |"
                f" {_number(r['train_images_per_s'], 0)} | {_number(r['wall_minutes'], 1)} |"
                f" {r['cpu']} |"
            )
            previous = r["step"]
        base = rows.iloc[0]
        lines.append("")
        if base["runs"] > 1:
            sd = 100 * base["val_folder_accuracy_sd"]
            lines.append(
                f"The recipe's seeds at {epochs} epochs spread by a sample sd of {sd:.2f} pp"
                f" ({base['runs']} seeds). A one-seed gain smaller than about twice that"
                f" ({2 * sd:.2f} pp) is inside the spread: the seed alone can give it. A gain"
                " over n paired seeds is held to 2 sd / sqrt(n), one of a runs against b"
                " (unpaired) to 2 sd sqrt((1/a + 1/b) / 2)."
            )
        else:
            lines.append(
                f"The recipe has fewer than two seeds at {epochs} epochs: no seed spread"
                " to judge a gain against."
            )
        cpus = {cpu for cpus in rows["cpu"] if cpus for cpu in cpus.split(" / ")}
        chips = {cpu.split(", ")[0] for cpu in cpus}
        shared = any("threads" in cpu for cpu in cpus)
        if len(chips) > 1 or shared:
            beside = ", nor between a run on all cores and one beside another" if shared else ""
            lines.append(
                f"These runs come from {len(chips)} CPU{'s' if len(chips) > 1 else ''}"
                f" ({'; '.join(sorted(cpus))}): their minutes and images/s are not comparable"
                f" across CPUs{beside}."
            )
        elif cpus:
            lines.append(f"Every run here on one CPU: {cpus.pop()}.")
        if epochs == epochs_record:
            lines.append(f"For scale: {name}, {record:.2%}.")
    return lines


SHORT = {"crop_area_min": "crop", "learn_rate": "lr", "label_smoothing": "smoothing"}


def _variant_label(run: pd.Series, committed: pd.DataFrame) -> str:
    """A variant's recipe and the keys in which it differs from the recipe as committed
    (else its experiment's name)."""
    if committed.empty:
        return re.sub(r"-\d+ep-seed\d+$", "", run["experiment"])
    base = committed.iloc[0]
    changed = [
        f"{SHORT.get(key, key)} {_written(None if pd.isna(run[key]) else run[key])}"
        for key in (*COMPARED, *FURTHER)
        if not _same(run[key], base[key])
    ]
    if not changed:
        return re.sub(r"-\d+ep-seed\d+$", "", run["experiment"])
    return f"{run['recipe']}: {', '.join(changed)}"


def plot_minutes(runs: pd.DataFrame, path: Path) -> None:
    """Accuracy (y) against training minutes (x; wall minutes, hollow, where a run has no
    training curve), a point per run: a colour per network, a marker per epochs, each
    labelled by its ablation step, "recipe" (as committed) or its experiment's name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    models = sorted(runs["model"].unique())
    colours = {model: f"C{i % 10}" for i, model in enumerate(models)}
    markers = {e: "o^sDv<>p"[i % 8] for i, e in enumerate(sorted(set(runs["epochs"])))}
    for _, r in runs.iterrows():
        timed = pd.notna(r["train_minutes"])
        x = r["train_minutes"] if timed else r["wall_minutes"]
        y = 100 * r["val_folder_accuracy"]
        colour = colours[r["model"]]
        ax.plot(
            [x], [y], markers[r["epochs"]], color=colour, ms=7,
            markerfacecolor=colour if timed else "none",
        )  # fmt: skip
        if pd.notna(r["step"]):
            label = r["step"].removeprefix(ABLATION_PREFIX)
        elif r["as_committed"]:
            label = r["recipe"]
        else:
            label = _variant_label(r, runs[runs["as_committed"] & (runs["recipe"] == r["recipe"])])
        ax.annotate(label, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=6)
    for name, _, epochs, accuracy in LEADERBOARD:
        ax.axhline(100 * accuracy, color="grey", lw=0.8, ls="--")
        ax.annotate(
            f"fastai's {epochs}-epoch {'record' if 'record' in name else 'entry'}"
            f" {accuracy:.2%} (GPU)",
            (0.01, 100 * accuracy), xycoords=("axes fraction", "data"),
            xytext=(0, 2), textcoords="offset points", fontsize=6, color="grey",
        )  # fmt: skip
    handles = [Line2D([], [], color=colours[m], marker="o", ls="", label=m) for m in models] + [
        Line2D([], [], color="black", marker=markers[e], ls="", label=f"{e} epochs")
        for e in sorted(markers)
    ]
    if runs["train_minutes"].isna().any():
        handles.append(
            Line2D([], [], color="black", marker="o", ls="", markerfacecolor="none",
                   label="wall minutes (no training curve)")
        )  # fmt: skip
    ax.set_xscale("log")
    ax.margins(x=0.2)  # room for the labels right of the last points
    ax.set_xlabel("training minutes a run (log scale)")
    ax.set_ylabel("val-folder accuracy (%)")
    ax.set_title("128 px from scratch on a CPU: accuracy against training minutes, a point a run")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write(runs: pd.DataFrame, out: Path, machine: str, steps: list[Step] | None = None) -> None:
    if steps is None:
        steps = ablation_steps()
    out.mkdir(parents=True, exist_ok=True)
    with replacing(out / "runs.csv") as tmp:
        runs[csv_columns(runs)].to_csv(tmp, index=False, float_format="%.4f")
    with replacing(out / "beyond_the_report.md") as tmp:
        tmp.write_text(markdown(runs, machine, steps))
    if steps:
        with replacing(out / "ablation.csv") as tmp:
            ablation(runs, steps).to_csv(tmp, index=False, float_format="%.4f")
    plot_minutes(runs, out / "accuracy_vs_minutes.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("results/cpu-128px-recipe"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        steps = ablation_steps()
        runs = collect(args.runs, steps=steps)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    machines = {machine_label(path) for path in args.runs.glob("*/machine.json")}
    write(runs, args.out or args.runs, " / ".join(sorted(machines)), steps)
    print((args.out or args.runs) / "beyond_the_report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
