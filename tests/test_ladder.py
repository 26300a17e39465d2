"""The resolution ladder's points, fit and sentence (python -m imagenette_repro.report.ladder)."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest

from imagenette_repro.report import ladder

from .conftest import ROOT


def points(init: str, accuracy: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"init": init, "input_side": side, "val_folder_accuracy": value, "seed": 42}
        for side, value in accuracy.items()
    )


def test_the_committed_32px_runs_are_read_with_their_init_side_and_accuracy():
    found = ladder.collect([ROOT / "results" / "cpu-32px-val-folder"])
    by_init = {row["init"]: row for _, row in found.iterrows()}
    assert set(by_init) == {"glorot", "normal_0.01"}
    assert by_init["glorot"]["input_side"] == 32
    assert by_init["glorot"]["val_folder_accuracy"] == pytest.approx(0.6268, abs=1e-4)
    assert by_init["normal_0.01"]["val_folder_accuracy"] == pytest.approx(0.2097, abs=1e-4)


def test_a_line_in_log_side_is_recovered_and_the_report_placed_against_it():
    line = {side: 0.1 + 0.1 * math.log(side) for side in (32, 64, 112)}
    trend = ladder.fit_trend(points("glorot", line), "glorot")
    assert trend.slope == pytest.approx(0.1) and trend.intercept == pytest.approx(0.1)
    assert trend.predicted == pytest.approx(0.1 + 0.1 * math.log(224))  # 64.1%
    assert "lies above it" in trend.sentence()


def test_the_interval_widens_with_scatter_and_can_hold_the_report():
    scattered = {32: 0.62, 48: 0.74, 64: 0.70, 112: 0.86}
    trend = ladder.fit_trend(points("glorot", scattered), "glorot")
    assert trend.low < trend.predicted < trend.high
    assert trend.low <= ladder.REPORT_ACCURACY <= trend.high
    assert "lies inside it" in trend.sentence()


def test_a_run_at_the_report_side_is_judged_against_the_fit_of_the_smaller_sides():
    line = {side: 0.1 + 0.1 * math.log(side) for side in (32, 64, 112)}
    smaller = ladder.fit_trend(points("normal_0.01", line), "normal_0.01")
    measured = points("normal_0.01", {**line, 224: 0.80})
    trend = ladder.fit_trend(measured, "normal_0.01")
    # The 224-px run is not in the fit that predicts it.
    assert trend.n == 3 and trend.predicted == pytest.approx(smaller.predicted)
    assert trend.measured == pytest.approx(0.80) and trend.measured_runs == 1
    sentence = trend.sentence()
    assert "measured 80.00% at 224 px (1 run)" in sentence
    assert "the report's 84.82% is 4.82 pp above it" in sentence
    assert "had predicted 64.1%" in sentence and "the measurement lies above it" in sentence
    two_seeds = pd.concat([measured, points("normal_0.01", {224: 0.90})], ignore_index=True)
    both = ladder.fit_trend(two_seeds, "normal_0.01")
    assert both.measured == pytest.approx(0.85) and "(2 runs)" in both.sentence()
    assert "0.18 pp below it" in both.sentence()


def test_two_sides_give_a_line_without_an_interval_and_one_side_no_fit():
    two = ladder.fit_trend(points("normal_0.01", {32: 0.2, 64: 0.3}), "normal_0.01")
    assert two.low is None and "no interval" in two.sentence()
    assert ladder.fit_trend(points("normal_0.01", {32: 0.2}), "normal_0.01") is None


def test_the_outputs_are_written(tmp_path):
    found = ladder.collect([ROOT / "results" / "cpu-32px-val-folder"])
    ladder.write(found, tmp_path)
    assert (tmp_path / "ladder.png").stat().st_size > 10_000
    assert "84.82%" in (tmp_path / "ladder.md").read_text()
    assert (tmp_path / "ladder_glorot.csv").read_text().startswith("input_side,")


def test_a_rung_of_either_record_shape_gives_its_experiment_not_the_baseline(tmp_path):
    """A rung's exp_show.json as recorded_exp_run.sh kept it before (the experiment's
    commit as a nameless entry) and now (its own entry under the baseline commit, whose
    committed metrics are another run's): the same point."""
    rung = ROOT / "results" / "cpu-ladder" / "ladder-064px-glorot-seed42"
    earlier = tmp_path / "earlier" / rung.name
    shutil.copytree(rung, earlier)
    shown = json.loads((rung / "exp_show.json").read_text())
    made = json.loads((rung / "run.json").read_text())
    own = {**shown[1], "name": made["experiment"]}
    baseline = json.loads(json.dumps(shown[1]))  # the baseline's own metrics: another side
    baseline["data"]["params"]["params.yaml"]["data"]["data"]["input_size"] = 48
    baseline.update(
        rev=made["commit"],
        name="main",
        experiments=[{"revs": [own], "executor": None, "name": made["experiment"]}],
    )
    new = tmp_path / "new" / rung.name
    shutil.copytree(rung, new)
    (new / "exp_show.json").write_text(json.dumps([shown[0], baseline]))
    points = {name: ladder.collect([tmp_path / name]) for name in ("earlier", "new")}
    assert list(points["new"]["input_side"]) == [64]
    columns = ["init", "input_side", "seed", "val_folder_accuracy", "experiment", "commit"]
    assert points["new"][columns].equals(points["earlier"][columns])
