"""The resolution ladder: how the val-folder accuracy of the report's best row grows with
the input side, one line per init, a fit of accuracy against log(side), and where the
report's 84.82% at 224 px lies against that trend.

    python -m imagenette_repro.report.ladder [--runs DIR ...] [--out results/cpu-ladder]

Reads the experiments saved in each DIR (every `exp_show.json` below it, read by
runs.read_runs), keeps the finished runs of the report's best row under the report's
protocol (train folder -> val folder), one per (init, side, seed), and writes to --out:
ladder.csv (one line per run), ladder_<init>.csv (for `dvc plots`), ladder.md (the table,
the fits and the sentence) and ladder.png.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import UserError
from ..experiments.runs import (
    EVALUATION,
    Run,
    exp_show_json,
    get_dotted,
    read_runs,
    recorded_run,
)

NETWORK = "network_84_8153"
REPORT_SIDE, REPORT_ACCURACY = 224, 0.8482
INIT_NAMES = {"glorot": "Glorot", "normal_0.01": "N(0, 0.01), R2018b's"}
DEFAULT_RUNS = ["results/cpu-ladder", "results/cpu-32px-val-folder"]


def ladder_point(run: Run) -> dict | None:
    """A finished run of the best row under the report's protocol, as one line; else None."""
    p, evaluation = run.params, run.metrics.get(EVALUATION) or {}
    accuracy = get_dotted(evaluation, "custom.val_folder.accuracy")
    if p.get("network") != NETWORK or accuracy is None:
        return None
    if get_dotted(p, "data.protocol") != "val_folder" or get_dotted(
        evaluation, "data.protocol"
    ) not in (
        None,
        "val_folder",
    ):
        return None
    return {
        "init": get_dotted(p, "train.init"),
        "input_side": get_dotted(p, "data.input_size"),
        "seed": p.get("seed"),
        "val_folder_accuracy": accuracy,
        "imagenet_val_accuracy": get_dotted(evaluation, "custom.val_folder_imagenet_val.accuracy"),
        "epochs_run": get_dotted(evaluation, "custom.epochs_run"),
        "stopped_early": get_dotted(evaluation, "custom.stopped_early"),
        "precision": get_dotted(evaluation, "custom.precision") or "fp32",
        "experiment": run.name,
    }


def collect(folders: list[Path]) -> pd.DataFrame:
    points = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("exp_show.json")):
            # A rung's own record (scripts/run_ladder_cpu.sh): its name, commit and time.
            record = path.parent / "run.json"
            made = json.loads(record.read_text()) if record.exists() else {}
            runs = read_runs(exp_show_json(path))
            if made:  # its own experiment (runs.recorded_run), not the baseline commit's
                chosen = recorded_run(runs, made["experiment"], made.get("commit", ""))
                runs = [chosen] if chosen else []
            for run in runs:
                point = ladder_point(run)
                if point:
                    point["experiment"] = made.get("experiment", point["experiment"])
                    point["commit"] = made.get("commit", "")[:7]
                    point["minutes"] = round(made["wall_seconds"] / 60) if made else None
                    point["source"] = str(path.parent)
                    points[(point["init"], point["input_side"], point["seed"])] = point
    if not points:
        raise UserError(f"no finished run of {NETWORK} under the report's protocol in {folders}")
    return pd.DataFrame(points.values()).sort_values(["init", "input_side", "seed"])


@dataclass
class Trend:
    """accuracy = intercept + slope * ln(side), over n measured points below REPORT_SIDE, and
    the measurement at REPORT_SIDE where one exists (the mean of its runs)."""

    init: str
    n: int
    intercept: float
    slope: float
    predicted: float  # at REPORT_SIDE
    low: float | None  # 95% prediction interval at REPORT_SIDE (None: fewer than 3 points)
    high: float | None
    measured: float | None = None
    measured_runs: int = 0

    def at(self, side: float) -> float:
        return self.intercept + self.slope * math.log(side)

    def sentence(self) -> str:
        if self.measured is not None:
            return self._measured_sentence()
        where = f"predicts {100 * self.predicted:.1f}% at {REPORT_SIDE} px"
        gap = 100 * (REPORT_ACCURACY - self.predicted)
        if self.low is None:
            return (
                f"{INIT_NAMES.get(self.init, self.init)}: the line through {self.n} points "
                f"{where}; the report's {100 * REPORT_ACCURACY:.2f}% is {abs(gap):.1f} pp "
                f"{'above' if gap > 0 else 'below'} it (two points: no interval)."
            )
        if self.low <= REPORT_ACCURACY <= self.high:
            place = "inside"
        else:
            place = "above" if REPORT_ACCURACY > self.high else "below"
        # An accuracy lies in [0, 100%]: the interval is shown cut there, its width said.
        low, high = max(self.low, 0.0), min(self.high, 1.0)
        cut = " cut at 100%" if high < self.high else ""
        return (
            f"{INIT_NAMES.get(self.init, self.init)}: the fit over {self.n} sides {where} "
            f"(95% prediction interval {100 * low:.1f}-{100 * high:.1f}%{cut}, "
            f"+-{50 * (self.high - self.low):.1f} pp with {self.n - 2} degree"
            f"{'s' * (self.n != 3)} of freedom); the report's {100 * REPORT_ACCURACY:.2f}% "
            f"lies {place} it, {abs(gap):.1f} pp {'above' if gap > 0 else 'below'} the "
            "prediction."
        )

    def _measured_sentence(self) -> str:
        """At REPORT_SIDE the measurement speaks, and the fit over the smaller sides is
        judged by it (a prediction made without the point it predicts)."""
        runs = f"{self.measured_runs} run{'s' * (self.measured_runs != 1)}"
        gap = 100 * (REPORT_ACCURACY - self.measured)
        said = (
            f"{INIT_NAMES.get(self.init, self.init)}: measured {100 * self.measured:.2f}% at "
            f"{REPORT_SIDE} px ({runs}); the report's {100 * REPORT_ACCURACY:.2f}% is "
            f"{abs(gap):.2f} pp {'above' if gap > 0 else 'below'} it. The line through the "
            f"{self.n} smaller sides had predicted {100 * self.predicted:.1f}%"
        )
        if self.low is None:
            return said + " (two points: no interval)."
        place = (
            "inside"
            if self.low <= self.measured <= self.high
            else ("above" if self.measured > self.high else "below")
        )
        low, high = max(self.low, 0.0), min(self.high, 1.0)
        return (
            f"{said} (95% prediction interval {100 * low:.1f}-{100 * high:.1f}%), and the "
            f"measurement lies {place} it."
        )


def fit_trend(points: pd.DataFrame, init: str) -> Trend | None:
    """Least squares of accuracy on ln(side) over an init's runs below REPORT_SIDE (each run
    one point), with the measurement at REPORT_SIDE, if any, beside the prediction."""
    at_report = points[(points["init"] == init) & (points["input_side"] == REPORT_SIDE)]
    rows = points[(points["init"] == init) & (points["input_side"] < REPORT_SIDE)]
    if rows["input_side"].nunique() < 2:
        return None
    x = np.log(rows["input_side"].to_numpy(float))
    y = rows["val_folder_accuracy"].to_numpy(float)
    slope, intercept = np.polyfit(x, y, 1)
    x0 = math.log(REPORT_SIDE)
    predicted = intercept + slope * x0
    n = len(x)
    low = high = None
    if n >= 3:
        residual = y - (intercept + slope * x)
        s = math.sqrt(float(residual @ residual) / (n - 2))
        leverage = (x0 - x.mean()) ** 2 / float(((x - x.mean()) ** 2).sum())
        spread = s * math.sqrt(1 + 1 / n + leverage)
        t = stats.t.ppf(0.975, n - 2)
        low, high = predicted - t * spread, predicted + t * spread
    measured = float(at_report["val_folder_accuracy"].mean()) if len(at_report) else None
    return Trend(
        init, n, float(intercept), float(slope), float(predicted), low, high,
        measured, len(at_report),
    )  # fmt: skip


def _made(row: pd.Series) -> str:
    if not row.get("commit"):
        return "earlier run (see its folder)"
    return f"`{row['commit']}`, {row['minutes']:.0f} min"


def markdown(points: pd.DataFrame, trends: list[Trend]) -> str:
    lines = [
        "| init | side (px) | seed | val folder (3,925) | its ILSVRC2012_val images | epochs "
        "| precision | experiment | commit, wall time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in points.iterrows():
        imagenet = row["imagenet_val_accuracy"]
        lines.append(
            f"| {INIT_NAMES.get(row['init'], row['init'])} | {row['input_side']} | {row['seed']} "
            f"| {100 * row['val_folder_accuracy']:.2f}% "
            f"| {'-' if pd.isna(imagenet) else f'{100 * imagenet:.2f}%'} "
            f"| {row['epochs_run']}{' (stopped)' if row['stopped_early'] else ''} "
            f"| {row['precision']} | `{row['experiment']}` | {_made(row)} |"
        )
    lines.append(
        f"| the report (MATLAB R2018b) | {REPORT_SIDE} | - | {100 * REPORT_ACCURACY:.2f}% "
        "| - | - | single | - | - |"
    )
    lines += ["", "Trend (accuracy against ln(side), least squares, each run one point):", ""]
    lines += [f"- {trend.sentence()}" for trend in trends] or ["- (fewer than two sides)"]
    return "\n".join(lines) + "\n"


def plot(points: pd.DataFrame, trends: list[Trend], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    sides = np.geomspace(points["input_side"].min() * 0.9, REPORT_SIDE * 1.1, 50)
    groups = list(points.groupby("init"))
    for index, ((init, rows), colour) in enumerate(zip(groups, ("C0", "C1", "C2"), strict=False)):
        ax.plot(rows["input_side"], 100 * rows["val_folder_accuracy"], "o", color=colour,
                label=f"{INIT_NAMES.get(init, init)} (measured)")  # fmt: skip
        trend = next((t for t in trends if t.init == init), None)
        if trend:
            ax.plot(sides, [100 * trend.at(s) for s in sides], "--", color=colour, lw=1,
                    label=f"{INIT_NAMES.get(init, init)}: fit on ln(side)")  # fmt: skip
            if trend.low is not None:
                low, high = max(trend.low, 0.0), min(trend.high, 1.0)  # an accuracy's range
                beside = REPORT_SIDE * (1 + 0.025 * (index - (len(groups) - 1) / 2))  # apart
                ax.errorbar([beside], [100 * trend.predicted], color=colour, capsize=4,
                            fmt="_", ms=10,
                            label=f"{INIT_NAMES.get(init, init)}: fit at {REPORT_SIDE} px, "
                                  "95% prediction interval",
                            yerr=[[100 * (trend.predicted - low)],
                                  [100 * (high - trend.predicted)]])  # fmt: skip
    ax.plot([REPORT_SIDE], [100 * REPORT_ACCURACY], "*", color="black", ms=12,
            label="the report (224 px, MATLAB R2018b)")  # fmt: skip
    ax.set_xscale("log")
    ticks = sorted({*points["input_side"].tolist(), REPORT_SIDE})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("input side (px, log scale)")
    ax.set_ylabel("val-folder accuracy (%)")
    ax.set_title(f"{NETWORK}, the report's protocol: accuracy against input side")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def write(points: pd.DataFrame, out: Path) -> list[Trend]:
    from ..files import replacing

    out.mkdir(parents=True, exist_ok=True)
    trends = [t for t in (fit_trend(points, init) for init in sorted(points["init"].unique())) if t]
    with replacing(out / "ladder.csv") as tmp:
        points.to_csv(tmp, index=False)
    for init, rows in points.groupby("init"):
        with replacing(out / f"ladder_{init}.csv") as tmp:
            rows[["input_side", "val_folder_accuracy", "imagenet_val_accuracy", "seed"]].to_csv(
                tmp, index=False
            )
    with replacing(out / "ladder.md") as tmp:
        tmp.write_text(markdown(points, trends))
    plot(points, trends, out / "ladder.png")
    return trends


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", type=Path, default=[Path(p) for p in DEFAULT_RUNS])
    parser.add_argument("--out", type=Path, default=Path("results/cpu-ladder"))
    args = parser.parse_args(argv)
    try:
        points = collect(args.runs)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write(points, args.out)
    print((args.out / "ladder.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
