"""Compare finished DVC experiments with the report's table.

    python -m imagenette_repro.report.comparison [--out metrics] [--input exp_show.json]
        [--curves-from-cache REPO_DIR | --no-curves]

Reads DVC's own records (`dvc exp show --json`) and writes to --out:

- `report_comparison.csv`: one line per experiment (params, what differs from the
  report's settings, accuracies, epochs run, training minutes and where they came from);
- `report_comparison.md` and `.png`: per row and settings, the report's accuracy (MATLAB
  R2018b, the row's own 224/256 px) beside the accuracy here, labelled with what differs;
- `report_ranking.md` and `.json`: per settings, whether the report's ranking of its rows
  holds here (Spearman's rho and Kendall's tau with one-sided permutation p-values,
  judged by the study's rule), and again without the rows whose layer list is assumed
  (params.yaml's assumed_architectures) where a group holds some;
- `report_vs_here.csv` and `.png`: the report's accuracy against this project's, a point
  per row (dvc.yaml draws the CSV of results/cpu-64px-30ep as a scatter plot).

Training minutes come from each run's dvclive curves (each epoch's images/s), kept in
OUT/curves/<experiment>.tsv, read there or from the DVC repository REPO_DIR (default:
this directory) when DVC can give them; else estimated from the dvclive summary in
`dvc exp show` (the last epoch's images/s), else missing. The report's conclusions are
judged in one place, the study (`python -m imagenette_repro.report.study`), from
experiments run for that purpose.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ..experiments.runs import EVALUATION, TRAIN_SUMMARY, get_dotted, read_runs
from ..files import replacing
from ..params import ROW_COLUMNS, Params, ParamsError, load_params
from .protocol import settings_label
from .ranking import RankAgreement, rank_agreement, ranking_sentence
from .study import (
    TRAIN_CURVES_OUT,
    StudyError,
    extract_curves,
    json_ready,
    markdown_table,
    read_curves,
    train_minutes_of,
)

OLD_PROTOCOL = "old protocol (made before data.protocol; not comparable with the report)"
REPORT_LABEL = "the report (MATLAB R2018b, 224/256 px)"
CURVES_MINUTES = "dvclive curves (each epoch's images/s)"
SUMMARY_MINUTES = "estimate: the last epoch's images/s (dvclive summary) x epochs run"
NO_MINUTES = (
    f"missing: needs the run's dvclive curve {TRAIN_CURVES_OUT}/plots/metrics/train/"
    "images_per_s.tsv (OUT/curves/<experiment>.tsv, or --curves-from-cache REPO_DIR)"
)


def experiments_from_dvc(shown: list[dict]) -> list[dict]:
    """One record per experiment with finished metrics: its name, commit, params and
    metrics (runs made under the old protocol, with custom.valid instead of
    custom.val_folder, count as finished too: the table labels them)."""
    records = []
    for run in read_runs(shown):
        evaluation = run.metrics.get(EVALUATION, {})
        old = get_dotted(evaluation, "custom.valid.accuracy") is not None  # old protocol
        if run.kind == "experiment" and run.params and (run.finished or old):
            records.append(
                {"name": run.name, "rev": run.rev, "params": run.params, "metrics": run.metrics}
            )
    return records


def experiments_from_files(paths: list[Path]) -> list[dict]:
    """The finished experiments of several saved `dvc exp show --json` files, in order; an
    experiment name in two of them is an error (the same row recorded twice)."""
    records: list[dict] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            shown = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: cannot read a `dvc exp show --json` ({err})") from err
        for record in experiments_from_dvc(shown):
            if record["name"] in seen:
                raise ValueError(
                    f"experiment {record['name']!r} is in both {seen[record['name']]} and "
                    f"{path}; expected each experiment in one file"
                )
            seen[record["name"]] = path
            records.append(record)
    return records


def _curves_of_run(path: Path, epochs: int | None) -> pd.DataFrame | None:
    """curves/<name>.tsv when it holds the run's epochs (else another run of that name's)."""
    try:
        curves = read_curves(path)
    except StudyError:
        return None
    return curves if curves is not None and len(curves) == epochs else None


def run_curves(
    records: list[dict], curves_dir: Path, repo_dir: Path | None
) -> dict[str, pd.DataFrame | None]:
    """Each experiment's dvclive curves: curves_dir/<name>.tsv when it has the run's
    epochs, else extracted there from the DVC repository `repo_dir` (study.extract_curves);
    None where neither gives them."""
    found: dict[str, pd.DataFrame | None] = {}
    for record in records:
        name, path = record["name"], curves_dir / f"{record['name']}.tsv"
        epochs = get_dotted(record["metrics"].get(EVALUATION, {}), "custom.epochs_run")
        curves = _curves_of_run(path, epochs)
        if curves is None and repo_dir is not None and record.get("rev"):
            try:
                extract_curves(name, record["rev"], repo_dir, curves_dir)
            except StudyError:
                pass  # not in that repository or its cache: minutes from exp show, or missing
            else:
                curves = _curves_of_run(path, epochs)
        found[name] = curves
    return found


def train_minutes(record: dict, curves: pd.DataFrame | None) -> tuple[float, str]:
    """(minutes in training passes, where they came from): the curves' per-epoch speed,
    else the dvclive summary's last speed times the epochs run, else NaN and what is
    missing."""
    evaluation = record["metrics"].get(EVALUATION, {})
    images = get_dotted(evaluation, "custom.train.images")
    minutes = train_minutes_of(curves, images)
    if not math.isnan(minutes):
        return minutes, CURVES_MINUTES
    speed = get_dotted(record["metrics"].get(TRAIN_SUMMARY) or {}, "train.images_per_s")
    epochs = get_dotted(evaluation, "custom.epochs_run")
    if speed and epochs and images:
        return epochs * images / speed / 60, SUMMARY_MINUTES
    return math.nan, NO_MINUTES


def report_row_accuracy(network: str | None, differs_in_row: str, report: Params) -> float:
    """The report's published accuracy for a run with a row's own columns, whatever its
    settings (the settings label says what differs); NaN for anything else."""
    row = report.report_rows.get(network or "")
    if row is None or differs_in_row:
        return math.nan
    return row.accuracy


def comparison_table(
    records: list[dict],
    report: Params,
    curves: dict[str, pd.DataFrame | None] | None = None,
) -> pd.DataFrame:
    """One line per experiment: the row's params, what differs from the report's settings
    (as evaluate judged it), the accuracies, and the training minutes (from `curves`, by
    experiment name, where given). `report_accuracy` only for a run at the report's
    settings; `report_row_accuracy` for every run with a row's own columns."""
    curves = curves or {}
    lines = []
    for record in records:
        params, metrics = record["params"], record["metrics"]
        evaluation = metrics[EVALUATION]
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
        differs_in_row = get_dotted(evaluation, "custom.differs_in_row", "")
        val_folder = get_dotted(evaluation, "custom.val_folder.accuracy")
        row_accuracy = math.nan if recipe else report_row_accuracy(network, differs_in_row, report)
        minutes, minutes_source = train_minutes(record, curves.get(record["name"]))
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
                "differs_in_row": differs_in_row,
                "report_accuracy": get_dotted(evaluation, "custom.report_accuracy"),
                "report_row_accuracy": row_accuracy,
                "val_folder_accuracy": val_folder,
                "held_out_accuracy": get_dotted(evaluation, "custom.held_out.accuracy"),
                "val_folder_imagenet_val_accuracy": get_dotted(
                    evaluation, "custom.val_folder_imagenet_val.accuracy"
                ),
                "difference_from_report": get_dotted(evaluation, "custom.difference_from_report"),
                "difference_from_report_row": math.nan
                if val_folder is None
                else val_folder - row_accuracy,
                "epochs_run": get_dotted(evaluation, "custom.epochs_run"),
                "precision": get_dotted(evaluation, "custom.precision"),
                "kept_epoch": get_dotted(evaluation, "custom.kept_epoch"),
                "best_valid_accuracy_epoch": get_dotted(
                    evaluation, "custom.best_valid_accuracy_epoch"
                ),
                "train_accuracy": get_dotted(evaluation, "custom.train.accuracy"),  # in eval mode
                "train_minutes": minutes,
                "train_minutes_source": minutes_source,
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


def _precisions(values: pd.Series) -> str:
    """The precisions a row's runs trained in ("bf16", "fp32", "bf16, fp32"); "n/a" where
    no record says (runs made before evaluation recorded it)."""
    named = sorted({str(value) for value in values.dropna()})
    return ", ".join(named) if named else "n/a"


def summary_by_row(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds, per (settings, network, row params)."""
    keys = [
        "settings",
        "network",
        *ROW_COLUMNS,
        "differs_in_row",
        "is_report_row",
        "report_accuracy",
        "report_row_accuracy",
    ]
    grouped = table.groupby(keys, dropna=False)
    summary = grouped.agg(
        runs=("val_folder_accuracy", "size"),
        val_folder_mean=("val_folder_accuracy", "mean"),
        val_folder_std=("val_folder_accuracy", "std"),
        held_out_mean=("held_out_accuracy", "mean"),
        epochs_run=("epochs_run", "mean"),
        precision=("precision", _precisions),
        train_minutes=("train_minutes", "mean"),
        train_minutes_source=("train_minutes_source", lambda s: "; ".join(sorted(set(s)))),
    ).reset_index()
    summary["difference_from_report"] = summary["val_folder_mean"] - summary["report_accuracy"]
    summary["difference_from_report_row"] = (
        summary["val_folder_mean"] - summary["report_row_accuracy"]
    )
    return summary.sort_values(
        ["settings", "report_row_accuracy", "network"], ascending=[True, False, True]
    ).reset_index(drop=True)


def side_by_side(summary: pd.DataFrame) -> pd.DataFrame:
    """report_comparison.md's table: per row and settings, the report's accuracy beside
    this project's (%), the difference (pp), epochs run, the precision the runs trained in
    and training minutes."""
    return pd.DataFrame(
        {
            "row": summary["network"],
            "settings here (what differs from the report's)": summary["settings"],
            "row's columns here (where not the report's)": summary["differs_in_row"],
            f"{REPORT_LABEL}, %": 100 * summary["report_row_accuracy"],
            "here, val folder, %": 100 * summary["val_folder_mean"],
            "sd over seeds, pp": 100 * summary["val_folder_std"],
            "seeds": summary["runs"],
            "difference, pp": 100 * summary["difference_from_report_row"],
            "epochs run": summary["epochs_run"],
            "precision": summary["precision"],
            "training minutes": summary["train_minutes"],
        }
    )


def comparison_markdown(summary: pd.DataFrame) -> str:
    """report_comparison.md: the side-by-side table and where its minutes came from."""
    sources = sorted(set("; ".join(summary["train_minutes_source"]).split("; ")))
    lines = [
        "# The report's rows beside this project's runs",
        "",
        f"{REPORT_LABEL}: the published accuracy of a row, shown beside every run with that "
        "row's own columns; the settings label says how the run here differs from the "
        "report's settings. Accuracy on the val folder (3,925 images), the mean over seeds; "
        "difference = here minus the report. Training minutes: the training passes only, "
        "the mean over seeds.",
        "",
        markdown_table(side_by_side(summary)),
        "",
        "Training minutes from: " + " | ".join(sources) + ".",
    ]
    return "\n".join(lines) + "\n"


def ranking_groups(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per settings label, its report rows (row, report_accuracy, here_accuracy: the mean
    over seeds), best in the report first; settings without report rows left out."""
    rows = summary[summary["report_row_accuracy"].notna() & summary["val_folder_mean"].notna()]
    groups = []
    for settings, group in rows.groupby("settings", sort=True):
        by_row = (
            group.groupby("network")
            .agg(
                report_accuracy=("report_row_accuracy", "first"),
                here_accuracy=("val_folder_mean", "mean"),
                seeds=("runs", "sum"),
            )
            .reset_index()
            .rename(columns={"network": "row"})
            .sort_values("report_accuracy", ascending=False)
            .reset_index(drop=True)
        )
        groups.append((str(settings), by_row))
    return groups


PUBLISHED_ONLY = "; the rows with a published layer list"


def published_layers_only(
    groups: list[tuple[str, pd.DataFrame]], assumed: set[str]
) -> list[tuple[str, pd.DataFrame]]:
    """Each group that holds a row whose layers are assumed (params.yaml's
    assumed_architectures), again without those rows: whether the ranking's verdict rests on
    the assumption."""
    return [
        (f"{settings}{PUBLISHED_ONLY}", rows[~rows["row"].isin(assumed)].reset_index(drop=True))
        for settings, rows in groups
        if rows["row"].isin(assumed).any()
    ]


def _what(settings: str, rows: pd.DataFrame) -> str:
    if settings.endswith(PUBLISHED_ONLY):
        return (
            f"the runs labelled '{settings.removesuffix(PUBLISHED_ONLY)}', only the rows with "
            f"a published layer list ({len(rows)} of the report's rows)"
        )
    return f"the runs labelled '{settings}' ({len(rows)} of the report's rows)"


def ranking_markdown(results: list[tuple[str, pd.DataFrame, RankAgreement]]) -> str:
    """report_ranking.md: per settings, the sentence and the two rankings side by side."""
    lines = ["# Does the report's ranking of its rows hold here?", ""]
    if not results:
        return "\n".join([*lines, "No run with a report row's own columns.", ""])
    for settings, rows, agreement in results:
        rank = {
            column: rows[column].rank(ascending=False, method="min").astype(int)
            for column in ("report_accuracy", "here_accuracy")
        }
        ranks = pd.DataFrame(
            {
                "row": rows["row"],
                f"{REPORT_LABEL}, %": 100 * rows["report_accuracy"],
                "rank in the report": rank["report_accuracy"],
                "here, val folder, %": 100 * rows["here_accuracy"],
                "rank here": rank["here_accuracy"],
                "seeds": rows["seeds"],
            }
        )
        lines += [
            f"## {settings}",
            "",
            ranking_sentence(agreement, _what(settings, rows)),
            "",
            markdown_table(ranks),
            "",
        ]
    return "\n".join(lines)


def ranking_record(results: list[tuple[str, pd.DataFrame, RankAgreement]]) -> dict:
    """report_ranking.json: per settings, the statistics, p-values, verdict and sentence."""
    return json_ready(
        {
            "groups": [
                {
                    "settings": settings,
                    **vars(agreement),
                    "text": ranking_sentence(agreement, _what(settings, rows)),
                    "rows": rows.to_dict(orient="records"),
                }
                for settings, rows, agreement in results
            ]
        }
    )


def write_scatter(points: pd.DataFrame, path: Path) -> None:
    """The report's accuracy (x) against this project's (y), a labelled point per row and
    the diagonal y = x; one colour per settings label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 8))
    values = 100 * pd.concat([points["report_accuracy"], points["here_accuracy"]])
    low, high = max(0.0, values.min() - 3), min(100.0, values.max() + 3)
    ax.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--", label="y = x")
    placed: list[tuple[float, float]] = []
    for settings, group in points.groupby("settings", sort=True):
        ax.scatter(100 * group["report_accuracy"], 100 * group["here_accuracy"], label=settings)
        for _, point in group.iterrows():
            x, y = 100 * point["report_accuracy"], 100 * point["here_accuracy"]
            # Rows with near-equal accuracies would print their names over each other.
            near = sum(abs(x - px) < 3 and abs(y - py) < 0.8 for px, py in placed)
            placed.append((x, y))
            ax.annotate(
                point["row"],
                (x, y),
                xytext=(3, 3 - 8 * near),
                textcoords="offset points",
                fontsize=6,
            )
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel(f"{REPORT_LABEL}, val folder, %")
    ax.set_ylabel("here, val folder, %")
    ax.set_title("The report's accuracy against this project's, one point per row")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Every run's val-folder accuracy; the report's beside every run with a row's columns.
    rows = summary.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(10, 0.55 * max(len(rows), 4) + 1.5))
    labels = [f"{n}\n({s})" for n, s in zip(rows["network"], rows["settings"], strict=True)]
    y = range(len(rows))
    published = rows["report_row_accuracy"].notna()
    ax.barh(
        [i + 0.2 for i in rows.index[published]],
        100 * rows.loc[published, "report_row_accuracy"],
        height=0.4,
        label=REPORT_LABEL,
    )
    ax.barh(
        [i - 0.2 for i in y],
        100 * rows["val_folder_mean"],
        height=0.4,
        xerr=100 * rows["val_folder_std"].fillna(0),
        label="here (val folder; the label says what differs)",
    )
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.set_xlabel("val-folder accuracy, %")
    ax.set_xlim(0, 100)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Val-folder accuracy: here, and the report's for the same row")
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_outputs(table: pd.DataFrame, out: Path, assumed: set[str] | None = None) -> str:
    """Every file of --out (see the module's doc); returns what is printed: the side-by-side
    table and the ranking's sentences."""
    summary = summary_by_row(table)
    out.mkdir(parents=True, exist_ok=True)
    with replacing(out / "report_comparison.csv") as tmp:
        table.to_csv(tmp, index=False)
    markdown = comparison_markdown(summary)
    with replacing(out / "report_comparison.md") as tmp:
        tmp.write_text(markdown)
    write_plot(summary, out / "report_comparison.png")
    groups = ranking_groups(summary)
    results = [
        (settings, rows, rank_agreement(rows["report_accuracy"], rows["here_accuracy"]))
        for settings, rows in groups + published_layers_only(groups, assumed or set())
    ]
    with replacing(out / "report_ranking.md") as tmp:
        tmp.write_text(ranking_markdown(results))
    with replacing(out / "report_ranking.json") as tmp:
        tmp.write_text(json.dumps(ranking_record(results), indent=2, allow_nan=False) + "\n")
    points = pd.concat(
        [rows.assign(settings=settings) for settings, rows in groups]
        or [pd.DataFrame(columns=["row", "report_accuracy", "here_accuracy", "settings"])]
    )[["row", "report_accuracy", "here_accuracy", "settings"]]
    with replacing(out / "report_vs_here.csv") as tmp:
        points.to_csv(tmp, index=False)
    if not points.empty:
        write_scatter(points, out / "report_vs_here.png")
    sentences = [ranking_sentence(a, _what(s, rows)) for s, rows, a in results]
    return "\n\n".join([markdown.rstrip(), *sentences]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imagenette_repro.report.comparison",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("metrics"))
    parser.add_argument(
        "--input",
        type=Path,
        action="append",
        help="a saved `dvc exp show --json`; repeated, the experiments of all of them (rows "
        "of one table recorded in several working trees)",
    )
    curves = parser.add_mutually_exclusive_group()
    curves.add_argument(
        "--curves-from-cache",
        type=Path,
        default=Path("."),
        metavar="REPO_DIR",
        help="the DVC repository whose experiments these are (default: this directory): "
        "each run's dvclive curves not yet in OUT/curves are read from it (dvc.api)",
    )
    curves.add_argument(
        "--no-curves",
        action="store_true",
        help="read no repository: curves only from OUT/curves",
    )
    args = parser.parse_args(argv)
    try:
        report = load_params()
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.input:
        try:
            records = experiments_from_files(args.input)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        shown = json.loads(
            subprocess.run(
                ["dvc", "exp", "show", "--json"], capture_output=True, text=True, check=True
            ).stdout
        )
        records = experiments_from_dvc(shown)
    repo_dir = None if args.no_curves else args.curves_from_cache
    table = comparison_table(records, report, run_curves(records, args.out / "curves", repo_dir))
    if table.empty:
        print(
            "error: no finished experiment with metrics/evaluation.json; run some first "
            "(python -m imagenette_repro.experiments.queue_rows queue --run)",
            file=sys.stderr,
        )
        return 2
    print(write_outputs(table, args.out, set(report.assumed_architectures)), end="")
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
