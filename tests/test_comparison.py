"""The comparison table, the ranking and the scatter, from records shaped like
`dvc exp show --json`."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from imagenette_repro.experiments.runs import TRAIN_SUMMARY
from imagenette_repro.params import validate
from imagenette_repro.report.comparison import (
    CURVES_MINUTES,
    NO_MINUTES,
    REPORT_LABEL,
    SUMMARY_MINUTES,
    comparison_table,
    experiments_from_dvc,
    main,
    run_curves,
    summary_by_row,
)
from imagenette_repro.report.protocol import FULL_ARCHIVE, custom_differences
from imagenette_repro.report.study import (
    CONTRADICTED,
    CURVE_COLUMNS,
    NOT_RESOLVED,
    SUPPORTED,
)

from .conftest import ROOT


def experiment(
    name,
    params,
    network,
    optimizer,
    augmentation,
    valid,
    train=None,
    seed=42,
    googlenet=None,
    size=32,
    epochs=30,
    precision="bf16",
):
    """An experiment record with the evaluation evaluate would write for it (its judgement
    of the report's settings from protocol.custom_differences)."""
    row = params["report_rows"][network]
    columns = {
        **{k: row[k] for k in ("learn_rate", "patience", "drop_period", "drop_rate_factor")},
        "optimizer": optimizer,
        "image_augmentation": augmentation,
    }
    values = {
        **params,
        **columns,
        "network": network,
        "seed": seed,
        "data": {**params["data"], "input_size": size},
        "train": {**params["train"], "max_epochs": epochs},
    }
    own_size = 256 if network == "network_75_4395" else 224
    settings, differs = custom_differences(
        {
            "network": network,
            "kind": "custom",
            "input_size": size,
            "own_input_size": own_size,
            "max_epochs": epochs,
            "batch_size": 128,
            "init": "normal_0.01",
            "patience_on": "loss",
            "keep": "final",
            "row_params": columns,
            "protocol": "val_folder",
            "folders": FULL_ARCHIVE,
        },
        validate(params).report_rows,
    )
    is_row = not settings and not differs
    custom = {
        "train": {"accuracy": train},
        "val_folder": {"accuracy": valid},
        "val_folder_imagenet_val": {"accuracy": valid - 0.02},
        "epochs_run": 4,
        "kept_epoch": 4,
        "best_valid_accuracy_epoch": 3,
        "is_report_row": is_row,
        "differs_in_settings": ", ".join(settings),  # as evaluate writes them
        "differs_in_row": "; ".join(differs),
    }
    if precision is not None:  # None: a record made before evaluate wrote it
        custom["precision"] = precision
    if is_row:
        custom["report_accuracy"] = row["accuracy"]
        custom["difference_from_report"] = valid - row["accuracy"]
    evaluation = {
        "custom": custom,
        "googlenet": {
            "pretrained": googlenet is not None,
            "val_folder": {"accuracy": googlenet or 0.1},
            "val_folder_imagenet_val": {"accuracy": googlenet or 0.1},
        },
        "data": {"protocol": "val_folder", "images": {"train": 9469, "valid": 3925, "test": 0}},
    }
    metrics = {
        "metrics/evaluation.json": {"data": evaluation},
    }
    return {
        "rev": name,
        "name": name,
        "data": {"params": {"params.yaml": {"data": values}}, "metrics": metrics},
    }


def shown(*revs):
    return [
        {"rev": "workspace", "experiments": None},
        {"rev": "abc", "experiments": [{"name": r["name"], "revs": [r]} for r in revs]},
    ]


def test_only_a_run_at_the_report_settings_is_compared_with_the_report(params):
    running = experiment("running", params, "network_84_8153", "sgdm", True, 0.5)
    running["data"]["metrics"]["metrics/evaluation.json"] = {
        "error": {"type": "FileNotFoundError", "msg": "No such file"}
    }
    old = experiment("old", params, "network_84_8153", "sgdm", True, 0.6)
    old_custom = old["data"]["metrics"]["metrics/evaluation.json"]["data"]["custom"]
    old_custom["valid"] = old_custom.pop("val_folder")  # made before data.protocol
    records = experiments_from_dvc(
        shown(
            running,
            old,
            experiment("a", params, "network_84_8153", "sgdm", True, 0.60),
            experiment("b", params, "network_84_8153", "sgdm", True, 0.84, size=224),
            experiment("c", params, "network_84_8153", "adam", True, 0.50, size=224),
            experiment("d", params, "network_84_8153", "sgdm", True, 0.80, size=224, epochs=12),
        )
    )
    table = comparison_table(records, validate(params)).set_index("experiment")
    assert "running" not in table.index and "old" not in table.index
    assert table.loc["a", "settings"] == "differs: 32 px"
    assert table.loc["d", "settings"] == "differs: 12 epochs max"
    assert table.loc["b", "settings"] == "report settings"
    assert table.loc["c", "differs_in_row"] == "optimizer adam (row: sgdm)"
    assert table.loc["b", "is_report_row"]
    assert not table.loc[["a", "c", "d"], "is_report_row"].any()
    assert table.loc["b", "report_accuracy"] == 0.8482
    assert table.loc["b", "difference_from_report"] == 0.84 - 0.8482
    assert table.loc[["a", "c", "d"], "report_accuracy"].isna().all()
    assert table.loc[["a", "c", "d"], "difference_from_report"].isna().all()
    assert table.loc["b", "val_folder_accuracy"] == 0.84
    # The report's number beside every run with the row's own columns, whatever its settings
    # (the label says what differs); not beside a run whose columns differ (c: ADAM).
    assert (table.loc[["a", "b", "d"], "report_row_accuracy"] == 0.8482).all()
    assert table.loc["a", "difference_from_report_row"] == pytest.approx(0.60 - 0.8482)
    assert math.isnan(table.loc["c", "report_row_accuracy"])
    assert math.isnan(table.loc["c", "difference_from_report_row"])


def test_a_row_names_every_precision_its_seeds_trained_in(params):
    """Rows whose runs trained in different precisions stay in one group (the settings label
    ignores precision), so the table says which precision each row's runs used."""
    runs = [
        experiment("mixed-42", params, "network_84_8153", "sgdm", True, 0.60, seed=42),
        experiment(
            "mixed-43", params, "network_84_8153", "sgdm", True, 0.62, seed=43, precision="fp32"
        ),
        experiment("old", params, "network_82_828", "sgdm", True, 0.55, precision=None),
    ]
    table = comparison_table(experiments_from_dvc(shown(*runs)), validate(params))
    summary = summary_by_row(table).set_index("network")
    assert summary.loc["network_84_8153", "precision"] == "bf16, fp32"
    assert summary.loc["network_84_8153", "runs"] == 2
    assert summary.loc["network_82_828", "precision"] == "n/a"


def fifteen_rows(params, order, size=64):
    """All 15 of the report's rows at `size` px, each with its own columns: row k (best in
    the report first) gets the k-th accuracy of the report's, lowered by 20 pp, reordered by
    `order` (the identity: the report's order)."""
    rows = sorted(params["report_rows"], key=lambda r: -params["report_rows"][r]["accuracy"])
    lowered = [params["report_rows"][row]["accuracy"] - 0.2 for row in rows]
    return [
        experiment(
            f"{row}-{size}px",
            params,
            row,
            params["report_rows"][row]["optimizer"],
            params["report_rows"][row]["image_augmentation"],
            lowered[index],
            size=size,
        )
        for row, index in zip(rows, order, strict=True)
    ]


SHUFFLE = [7, 13, 2, 10, 0, 5, 14, 3, 11, 8, 1, 12, 6, 9, 4]  # Spearman's rho about 0


@pytest.mark.parametrize(
    "order, verdict",
    [
        (list(range(15)), SUPPORTED),
        (list(range(14, -1, -1)), CONTRADICTED),
        (SHUFFLE, NOT_RESOLVED),
    ],
    ids=["same order", "reversed", "shuffled"],
)
def test_fifteen_rows_side_by_side_ranked_and_plotted(
    params, tmp_path, monkeypatch, capsys, order, verdict
):
    revs = fifteen_rows(params, order)
    fp32 = next(r for r in revs if r["name"].startswith("network_82_3185"))
    fp32["data"]["metrics"]["metrics/evaluation.json"]["data"]["custom"]["precision"] = "fp32"
    exp_show = tmp_path / "exp_show.json"
    exp_show.write_text(json.dumps(shown(*revs)))
    out = tmp_path / "out"
    monkeypatch.chdir(ROOT)  # params.yaml: the report's table
    assert main(["--input", str(exp_show), "--out", str(out), "--no-curves"]) == 0
    printed = capsys.readouterr().out

    table = pd.read_csv(out / "report_comparison.csv")
    assert len(table) == 15 and (table["settings"] == "differs: 64 px").all()
    assert table["report_accuracy"].isna().all()  # evaluate's: at the report's settings only
    assert table["report_row_accuracy"].notna().all()
    assert (table["train_minutes_source"] == NO_MINUTES).all()
    assert table["train_minutes"].isna().all()
    markdown = (out / "report_comparison.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| row"))
    columns = (REPORT_LABEL, "here, val folder", "difference, pp", "epochs run", "precision")
    for column in (*columns, "minutes"):
        assert column in header
    assert sum(line.startswith("| network_") for line in markdown.splitlines()) == 15
    cells = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
        for line in markdown.splitlines()
        if line.startswith("| network_")
    }
    at = [c.strip() for c in header.split("|")[1:-1]].index("precision")
    assert cells["network_82_3185"][at] == "fp32"
    assert {cells[row][at] for row in cells if row != "network_82_3185"} == {"bf16"}
    assert NO_MINUTES in markdown

    group, published = json.loads((out / "report_ranking.json").read_text())["groups"]
    assert group["verdict"] == verdict and group["n"] == 15
    # Again without the three rows whose layer list params.yaml assumes.
    assert published["settings"] == "differs: 64 px; the rows with a published layer list"
    assert published["n"] == 12
    assert {r["row"] for r in published["rows"]} == {r["row"] for r in group["rows"]} - {
        "network_64_0764",
        "network_65_6561",
        "network_71_6943",
    }
    assert (
        "only the rows with a published layer list (12 of the report's rows)" in (published["text"])
    )
    assert published["text"] in (out / "report_ranking.md").read_text()
    assert group["settings"] == "differs: 64 px"
    assert group["text"] in printed and group["text"] in (out / "report_ranking.md").read_text()
    assert f"({verdict})" in group["text"]

    scatter = pd.read_csv(out / "report_vs_here.csv")
    assert list(scatter.columns[:3]) == ["row", "report_accuracy", "here_accuracy"]
    assert len(scatter) == 15
    points = scatter.set_index("row")
    assert points.loc["network_84_8153", "report_accuracy"] == 0.8482
    for png in ("report_vs_here.png", "report_comparison.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if verdict == SUPPORTED:
        assert group["rho"] == pytest.approx(1) and group["tau"] == pytest.approx(1)
        assert published["rho"] == pytest.approx(1) and published["verdict"] == SUPPORTED
        assert points.loc["network_84_8153", "here_accuracy"] == pytest.approx(0.6482)
        best = next(line for line in markdown.splitlines() if "| network_84_8153" in line)
        assert "84.82" in best and "64.82" in best and "-20.00" in best


def test_training_minutes_from_curves_else_the_summary_else_missing(params, tmp_path):
    names = ("curves", "summary", "stale", "none")
    revs = [experiment(name, params, "network_84_8153", "sgdm", True, 0.6) for name in names]
    for rev in revs:
        evaluation = rev["data"]["metrics"]["metrics/evaluation.json"]["data"]
        evaluation["custom"]["train"]["images"] = 9469  # 4 epochs run
    summary = {"train": {"images_per_s": 100.0}, "epochs_run": 4, "step": 3}
    revs[1]["data"]["metrics"][TRAIN_SUMMARY] = {"data": summary}
    curves_dir = tmp_path / "curves"
    curves_dir.mkdir()
    for name, speeds in (("curves", [100, 100, 50, 50]), ("stale", [100, 100, 100])):
        curves = pd.DataFrame({column: 0.5 for column in CURVE_COLUMNS}, index=speeds)
        curves["epoch"] = range(1, len(speeds) + 1)
        curves["train/images_per_s"] = speeds
        curves.to_csv(curves_dir / f"{name}.tsv", sep="\t", index=False)
    records = experiments_from_dvc(shown(*revs))
    # tmp_path is no DVC repository: nothing more to extract, and no error
    found = run_curves(records, curves_dir, repo_dir=tmp_path)
    assert found["curves"] is not None and found["stale"] is None  # 3 epochs, the run 4
    table = comparison_table(records, validate(params), found).set_index("experiment")
    assert table.loc["curves", "train_minutes"] == pytest.approx(9469 * (2 / 100 + 2 / 50) / 60)
    assert table.loc["curves", "train_minutes_source"] == CURVES_MINUTES
    assert table.loc["summary", "train_minutes"] == pytest.approx(4 * 9469 / 100 / 60)
    assert table.loc["summary", "train_minutes_source"] == SUMMARY_MINUTES
    for name in ("stale", "none"):
        assert math.isnan(table.loc[name, "train_minutes"])
        assert table.loc[name, "train_minutes_source"] == NO_MINUTES
    assert "metrics/train_custom/plots/metrics/train/images_per_s.tsv" in NO_MINUTES


def split_table(params, tmp_path, first_rows: int, rest_from: int) -> tuple[Path, Path]:
    """The 15 rows (the report's order) saved as two `dvc exp show --json` files."""
    runs = fifteen_rows(params, list(range(15)))
    first, rest = tmp_path / "first.json", tmp_path / "rest.json"
    first.write_text(json.dumps(shown(*runs[:first_rows])))
    rest.write_text(json.dumps(shown(*runs[rest_from:])))
    return first, rest


def test_a_table_recorded_in_two_working_trees_reads_as_one(params, tmp_path, monkeypatch):
    first, rest = split_table(params, tmp_path, 4, 4)
    out = tmp_path / "out"
    monkeypatch.chdir(ROOT)
    argv = ["--input", str(first), "--input", str(rest), "--out", str(out), "--no-curves"]
    assert main(argv) == 0
    group, _ = json.loads((out / "report_ranking.json").read_text())["groups"]
    assert group["n"] == 15 and group["verdict"] == SUPPORTED
    assert len(pd.read_csv(out / "report_comparison.csv")) == 15


def test_a_row_recorded_in_both_files_is_refused(params, tmp_path, monkeypatch, capsys):
    first, rest = split_table(params, tmp_path, 5, 4)  # the fifth row in both
    monkeypatch.chdir(ROOT)
    argv = ["--input", str(first), "--input", str(rest), "--out", str(tmp_path / "out")]
    assert main([*argv, "--no-curves"]) == 2
    error = capsys.readouterr().err
    fifth = sorted(params["report_rows"], key=lambda r: -params["report_rows"][r]["accuracy"])[4]
    assert f"experiment '{fifth}-64px' is in both" in error
    assert str(first) in error and str(rest) in error
    assert not (tmp_path / "out").exists()
