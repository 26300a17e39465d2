"""Compare finished DVC experiments with the report's table.

    python -m imagenette_repro.report.comparison [--out metrics] [--input exp_show.json]

Reads DVC's own records (`dvc exp show --json`), writes `report_comparison.csv`,
`report_comparison.md` and `report_comparison.png` to --out, and prints the table. The
report's conclusions are judged in one place, the study (`python -m
imagenette_repro.report.study`), from experiments run for that purpose.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ..experiments.runs import EVALUATION, get_dotted, read_runs
from ..params import ROW_COLUMNS, Params, ParamsError, load_params
from .protocol import settings_label

OLD_PROTOCOL = "old protocol (made before data.protocol; not comparable with the report)"


def experiments_from_dvc(shown: list[dict]) -> list[dict]:
    """One record per experiment with finished metrics: its name, params and metrics
    (runs made under the old protocol, with custom.valid instead of custom.val_folder,
    count as finished too: the table labels them)."""
    records = []
    for run in read_runs(shown):
        evaluation = run.metrics.get(EVALUATION, {})
        old = get_dotted(evaluation, "custom.valid.accuracy") is not None  # old protocol
        if run.kind == "experiment" and run.params and (run.finished or old):
            records.append({"name": run.name, "params": run.params, "metrics": run.metrics})
    return records


def comparison_table(records: list[dict], report: Params) -> pd.DataFrame:
    """One line per experiment: the row's params, what differs from the report's settings
    (as evaluate judged it), and the accuracies; the published accuracy only for a run
    at the report's settings."""
    lines = []
    for record in records:
        params, metrics = record["params"], record["metrics"]
        evaluation = metrics["metrics/evaluation.json"]
        network = params.get("network")
        recipe = get_dotted(params, f"recipes.{network}")
        if recipe is None and network in report.recipes:
            recipe = report.recipes[network].model_dump()
        columns = {key: params.get(key) for key in ROW_COLUMNS}
        if recipe:
            columns = {key: None for key in ROW_COLUMNS}
            columns.update(
                optimizer=recipe.get("optimizer"),
                learn_rate=recipe.get("learn_rate"),
                image_augmentation=recipe.get("augmentation"),
            )
        old = get_dotted(evaluation, "custom.val_folder") is None
        is_row = bool(get_dotted(evaluation, "custom.is_report_row", False))
        lines.append(
            {
                "experiment": record["name"],
                "network": network,
                "is_report_row": is_row,
                "model": f"timm:{recipe.get('model')}" if recipe else "report's layers",
                **columns,
                "seed": params.get("seed"),
                "input_size": get_dotted(params, "data.input_size"),
                "max_epochs": get_dotted(params, "train.max_epochs"),
                "dataset": Path(str(get_dotted(params, "data.archive", ""))).name,
                "settings": OLD_PROTOCOL
                if old
                else settings_label(get_dotted(evaluation, "custom.differs_in_settings", "")),
                "differs_in_row": get_dotted(evaluation, "custom.differs_in_row", ""),
                "report_accuracy": get_dotted(evaluation, "custom.report_accuracy"),
                "val_folder_accuracy": get_dotted(evaluation, "custom.val_folder.accuracy"),
                "held_out_accuracy": get_dotted(evaluation, "custom.held_out.accuracy"),
                "val_folder_imagenet_val_accuracy": get_dotted(
                    evaluation, "custom.val_folder_imagenet_val.accuracy"
                ),
                "difference_from_report": get_dotted(evaluation, "custom.difference_from_report"),
                "epochs_run": get_dotted(evaluation, "custom.epochs_run"),
                "kept_epoch": get_dotted(evaluation, "custom.kept_epoch"),
                "best_valid_accuracy_epoch": get_dotted(
                    evaluation, "custom.best_valid_accuracy_epoch"
                ),
                "train_accuracy": get_dotted(evaluation, "custom.train.accuracy"),  # in eval mode
                "googlenet_pretrained": get_dotted(evaluation, "googlenet.pretrained"),
                "googlenet_val_folder_accuracy": get_dotted(
                    evaluation, "googlenet.val_folder.accuracy"
                ),
                "googlenet_val_folder_imagenet_val_accuracy": get_dotted(
                    evaluation, "googlenet.val_folder_imagenet_val.accuracy"
                ),
            }
        )
    table = pd.DataFrame(lines)
    if table.empty:
        return table
    table = table[table["settings"] != OLD_PROTOCOL].reset_index(drop=True)
    if table.empty:
        return table
    return table.sort_values(
        ["settings", "report_accuracy", "network", "seed"], na_position="last"
    ).reset_index(drop=True)


def summary_by_row(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds, per (settings, network, row params)."""
    keys = ["settings", "network", *ROW_COLUMNS, "is_report_row", "report_accuracy"]
    grouped = table.groupby(keys, dropna=False)
    summary = grouped.agg(
        runs=("val_folder_accuracy", "size"),
        val_folder_mean=("val_folder_accuracy", "mean"),
        val_folder_std=("val_folder_accuracy", "std"),
        held_out_mean=("held_out_accuracy", "mean"),
        epochs_run=("epochs_run", "mean"),
    ).reset_index()
    summary["difference_from_report"] = summary["val_folder_mean"] - summary["report_accuracy"]
    return summary.sort_values(["settings", "report_accuracy"], na_position="last")


def write_plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Every run's val-folder accuracy; the published one only beside a report row.
    rows = summary.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(10, 0.45 * max(len(rows), 4) + 1.5))
    labels = [f"{n} ({s})" for n, s in zip(rows["network"], rows["settings"], strict=True)]
    y = range(len(rows))
    published = rows["report_accuracy"].notna()
    ax.barh(
        [i + 0.2 for i in rows.index[published]],
        100 * rows.loc[published, "report_accuracy"],
        height=0.4,
        label="report (report rows only)",
    )
    ax.barh(
        [i - 0.2 for i in y],
        100 * rows["val_folder_mean"],
        height=0.4,
        xerr=100 * rows["val_folder_std"].fillna(0),
        label="reproduced (val folder)",
    )
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.set_xlabel("val-folder accuracy, %")
    ax.set_xlim(0, 100)
    ax.legend(loc="lower right")
    ax.set_title("Val-folder accuracy: reproduced, and published where the settings match")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imagenette_repro.report.comparison",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("metrics"))
    parser.add_argument("--input", type=Path, help="a saved `dvc exp show --json`")
    args = parser.parse_args(argv)
    try:
        report = load_params()
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.input:
        shown = json.loads(args.input.read_text())
    else:
        shown = json.loads(
            subprocess.run(
                ["dvc", "exp", "show", "--json"], capture_output=True, text=True, check=True
            ).stdout
        )
    table = comparison_table(experiments_from_dvc(shown), report)
    if table.empty:
        print(
            "error: no finished experiment with metrics/evaluation.json; run some first "
            "(python -m imagenette_repro.experiments.queue_rows queue --run)",
            file=sys.stderr,
        )
        return 2
    summary = summary_by_row(table)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "report_comparison.csv", index=False)
    shown_columns = [
        "settings",
        "network",
        "optimizer",
        "image_augmentation",
        "runs",
        "report_accuracy",
        "val_folder_mean",
        "val_folder_std",
        "held_out_mean",
        "difference_from_report",
        "epochs_run",
    ]
    markdown = summary[shown_columns].to_markdown(index=False, floatfmt=".4f")
    (args.out / "report_comparison.md").write_text(markdown + "\n")
    write_plot(summary, args.out / "report_comparison.png")
    print(markdown)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as err:
        print(
            f"error: {' '.join(err.cmd)} failed (exit {err.returncode}): "
            f"{(err.stderr or '').strip()}",
            file=sys.stderr,
        )
        sys.exit(2)
