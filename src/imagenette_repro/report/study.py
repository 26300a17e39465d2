"""The report's conclusions re-tested with several seeds (the conclusions study).

    python -m imagenette_repro.report.study [--out DIR] [--curves-from-cache REPO_DIR]
        [--pretrained EVALUATION_JSON] [--precision-pair FP32_EXP_SHOW_JSON:EXPERIMENT]
        [--precision-pairs EXP_SHOW_JSON]
        EXP_SHOW_JSON [EXP_SHOW_JSON ...]

Reads batches of `dvc exp show --json` (the same experiment name in two batches: the
newest run counts), keeps the study's experiments (`<row>-study[-<variant>]-seed<N>`, made
by scripts/run_conclusions_cpu.sh) and pairs the conditions seed by seed:

    base             network_84_8153-study-seedN             the report's best row
    no_augmentation  network_84_8153-study-no-aug-seedN      the same without augmentation
    adam_row         network_82_828-study-seedN              the report's ADAM row (same layers)
    no_dropout       network_84_8153-study-no-dropout-seedN  the same without its Dropout layer

Each conclusion is a mean paired difference (percentage points) with a 95% two-sided t
interval over the seeds; the verdict says on which side of 0 the interval lies. Writes
study_runs.{csv,md}, study_summary.{csv,md}, study_conclusions.{md,json} and, with
--curves-from-cache, curves/<experiment>.tsv (dvclive's curves, read with dvc.api from
the repository whose experiments these are) to --out, and prints the conclusions.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dvc.api
import pandas as pd
from dvc.exceptions import DvcException
from scipy import stats

from ..errors import UserError
from ..experiments.catalogue import overrides
from ..experiments.runs import EVALUATION, get_dotted, read_runs
from ..files import replacing
from .protocol import settings_label

DEFAULT_OUT = Path("results/cpu-32px-conclusions")
CONFIDENCE = 0.95
TRAIN_CURVES_OUT = "metrics/train_custom"

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NOT_RESOLVED = "not resolved"
NOT_ENOUGH_RUNS = "not enough runs"
NO_CURVES = "no curves"
NOT_CHECKED = "not checked"

BF16_AGREES = "bf16 agrees within the seed spread"
BF16_DIFFERS = "bf16 differs"
PRECISION_SPREAD_FACTOR = 2  # |bf16 - fp32| <= 2 x the base condition's seed std: agrees

# dvclive's files in metrics/train_custom, by the curve's column in curves/<name>.tsv.
CURVE_FILES = {
    "learn_rate": "plots/metrics/learn_rate.tsv",
    "train/accuracy": "plots/metrics/train/accuracy.tsv",
    "train/images_per_s": "plots/metrics/train/images_per_s.tsv",
    "train/loss": "plots/metrics/train/loss.tsv",
    "valid/accuracy": "plots/metrics/valid/accuracy.tsv",
    "valid/loss": "plots/metrics/valid/loss.tsv",
}
CURVE_COLUMNS = ["epoch", *CURVE_FILES]
UNITS = (
    "Accuracies in %, gaps (train in eval mode minus val folder) in percentage points, "
    "valid loss and accuracy after epoch 3 from dvclive's curves, training time (train "
    "passes only) estimated from each epoch's images/s, in minutes."
)

STUDY_NAME = re.compile(r"^(?P<row>.+?)-study(?:-(?P<variant>.+?))?-seed(?P<seed>\d+)$")
# What every study run shares; a study mixing them is flagged (its pairs are not like
# with like). The precision is evaluate's record of the training step.
SHARED_SETTINGS = (
    "data.md5",
    "data.protocol",
    "data.input_size",
    "train.init",
    "train.max_epochs",
    "train.batch_size",
    "train.patience_on",
    "train.keep",
    "train.scaled_input",
)

SGDM_ROW = {
    "optimizer": "sgdm",
    "learn_rate": 0.001,
    "patience": 4,
    "drop_period": 4,
    "drop_rate_factor": 0.65,
}
ADAM_ROW = {
    "optimizer": "adam",
    "learn_rate": 0.0001,
    "patience": 3,
    "drop_period": 3,
    "drop_rate_factor": 0.65,
}


class StudyError(UserError):
    """Study records that cannot be compared (mislabelled runs, missing curves or files)."""


@dataclass(frozen=True)
class Condition:
    """One arm of the study: how its experiments are named and the params they must have
    (dotted keys; `train.dropout` missing counts as true, the default before it existed)."""

    name: str
    row: str
    variant: str  # between "-study" and "-seed<N>" in the name; "" for none
    params: dict[str, Any]
    description: str


CONDITIONS = (
    Condition(
        "base",
        "network_84_8153",
        "",
        {
            "network": "network_84_8153",
            **SGDM_ROW,
            "image_augmentation": True,
            "train.dropout": True,
        },
        "the report's best row (network_84_8153, SGDM, augmentation, dropout)",
    ),
    Condition(
        "no_augmentation",
        "network_84_8153",
        "no-aug",
        {
            "network": "network_84_8153",
            **SGDM_ROW,
            "image_augmentation": True,
            "train.dropout": True,
            **overrides(["study-no-aug"]),  # experiments.yaml: what the queue sets
        },
        "network_84_8153 without image augmentation",
    ),
    Condition(
        "adam_row",
        "network_82_828",
        "",
        {
            "network": "network_82_828",
            **ADAM_ROW,
            "image_augmentation": True,
            "train.dropout": True,
        },
        "the report's ADAM row network_82_828 (network_84_8153's layers; lr 0.0001, "
        "patience 3, drop period 3)",
    ),
    Condition(
        "no_dropout",
        "network_84_8153",
        "no-dropout",
        {
            "network": "network_84_8153",
            **SGDM_ROW,
            "image_augmentation": True,
            "train.dropout": True,
            **overrides(["study-no-dropout"]),  # experiments.yaml: what the queue sets
        },
        "network_84_8153 without its Dropout layer",
    ),
)
CONDITION_ORDER = [c.name for c in CONDITIONS]
PARAM_DEFAULTS = {"train.dropout": True}


@dataclass
class Experiment:
    """A finished experiment of `dvc exp show --json`: its commit, params and evaluation."""

    name: str
    rev: str
    timestamp: str | None
    params: dict
    evaluation: dict  # metrics/evaluation.json
    source: str  # the file it was read from


@dataclass
class StudyRun:
    """A study experiment with its condition and seed."""

    experiment: Experiment
    condition: str
    seed: int

    @property
    def name(self) -> str:
        return self.experiment.name


@dataclass
class Interval:
    """Mean of paired differences with its sample std and a two-sided t interval."""

    n: int
    mean: float
    std: float
    low: float
    high: float
    t_quantile: float


@dataclass
class TestResult:
    """One conclusion's test: paired differences by seed, the interval and the verdict."""

    key: str
    claim: str
    difference: str
    metric: str
    seeds: list[int]
    differences: list[float]
    interval: Interval
    verdict: str
    text: str
    notes: list[str] = field(default_factory=list)


# -- reading dvc exp show ------------------------------------------------------------------


def experiments_from_exp_show(shown: list[dict], source: str = "") -> list[Experiment]:
    """Every finished experiment (metrics/evaluation.json with a val-folder accuracy) of one
    `dvc exp show --json`; queued, running and failed ones are left out (a running one
    shows its parent commit's metrics, so its executor state decides)."""
    return [
        Experiment(
            name=run.name,
            rev=run.rev,
            timestamp=run.timestamp,
            params=run.params,
            evaluation=run.metrics[EVALUATION],
            source=source,
        )
        for run in read_runs(shown)
        if run.kind == "experiment" and run.finished and run.params
    ]


def _when(timestamp: str | None) -> datetime:
    try:
        return datetime.fromisoformat(str(timestamp)).replace(tzinfo=None)
    except ValueError:
        return datetime.min


def newest_by_name(experiments: list[Experiment]) -> dict[str, Experiment]:
    """One experiment per name: the newest timestamp (a tie: the one read last)."""
    kept: dict[str, Experiment] = {}
    for experiment in experiments:
        old = kept.get(experiment.name)
        if old is None or _when(experiment.timestamp) >= _when(old.timestamp):
            kept[experiment.name] = experiment
    return kept


def read_exp_show(paths: list[Path]) -> dict[str, Experiment]:
    """The finished experiments of several `dvc exp show --json` files, newest per name."""
    experiments = []
    for path in paths:
        try:
            shown = json.loads(Path(path).read_text())
        except FileNotFoundError as err:
            raise StudyError(f"{path}: no such file") from err
        except json.JSONDecodeError as err:
            raise StudyError(f"{path}: not JSON ({err}); expected `dvc exp show --json`") from err
        if not isinstance(shown, list):
            raise StudyError(f"{path}: expected the list that `dvc exp show --json` writes")
        experiments += experiments_from_exp_show(shown, str(path))
    return newest_by_name(experiments)


def _param(params: dict, dotted: str) -> Any:
    return get_dotted(params, dotted, PARAM_DEFAULTS.get(dotted))


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        return math.isclose(actual, expected, rel_tol=1e-9)
    return actual == expected


def condition_of(name: str) -> tuple[Condition, int] | None:
    """The condition and seed a study experiment's name says, or None (not a study run)."""
    match = STUDY_NAME.match(name)
    if not match:
        return None
    for condition in CONDITIONS:
        if match["row"] == condition.row and (match["variant"] or "") == condition.variant:
            return condition, int(match["seed"])
    return None


def study_runs(experiments: dict[str, Experiment]) -> list[StudyRun]:
    """The study's experiments, each checked against its condition's params and seed
    (a mismatch is a StudyError); other experiments are left out."""
    runs = []
    for name, experiment in experiments.items():
        found = condition_of(name)
        if found is None:
            continue
        condition, seed = found
        wrong = [
            f"{key} is {_param(experiment.params, key)!r}, expected {expected!r}"
            for key, expected in condition.params.items()
            if not _same(_param(experiment.params, key), expected)
        ]
        if experiment.params.get("seed") != seed:
            wrong.append(f"seed is {experiment.params.get('seed')!r}, the name says {seed}")
        if wrong:
            raise StudyError(
                f"{name} ({experiment.source}): its name makes it condition "
                f"{condition.name} ({condition.description}), but its params disagree: "
                + "; ".join(wrong)
            )
        runs.append(StudyRun(experiment, condition.name, seed))
    return sorted(runs, key=lambda r: (CONDITION_ORDER.index(r.condition), r.seed))


def shared_setting_warnings(runs: list[StudyRun]) -> list[str]:
    """A line per shared setting (SHARED_SETTINGS, training precision) that differs
    between study runs."""
    warnings = []
    values: dict[str, dict[str, list[str]]] = {}
    for run in runs:
        for key in SHARED_SETTINGS:
            value = repr(_param(run.experiment.params, key))
            values.setdefault(key, {}).setdefault(value, []).append(run.name)
        precision = repr(_precision(run.experiment.evaluation, "custom"))
        values.setdefault("precision", {}).setdefault(precision, []).append(run.name)
    for key, by_value in values.items():
        if len(by_value) > 1:
            warnings.append(
                f"the study's runs differ in {key}: "
                + "; ".join(
                    f"{v} ({len(names)} runs, e.g. {names[0]})" for v, names in by_value.items()
                )
            )
    return warnings


def _precision(evaluation: dict, model: str) -> str:
    return get_dotted(evaluation, f"{model}.precision") or "fp32"  # older runs: fp32 only


# -- curves ------------------------------------------------------------------------------


def extract_curves(run_name: str, rev: str, repo_dir: Path, curves_dir: Path) -> Path:
    """Write `curves_dir/<run_name>.tsv` (epoch and dvclive's curves of metrics/train_custom)
    from experiment `rev` of the DVC repository `repo_dir`, read with dvc.api (from its
    cache or its remote); a file DVC cannot give is a StudyError naming the run."""
    curves = None
    files = None
    for column, relpath in CURVE_FILES.items():
        path = f"{TRAIN_CURVES_OUT}/{relpath}"
        try:
            files = files or dvc.api.DVCFileSystem(str(repo_dir), rev=rev)  # opened once
            with files.open(path) as file:
                curve = pd.read_csv(file, sep="\t")
        except (DvcException, FileNotFoundError) as err:
            raise StudyError(
                f"{run_name}: DVC cannot give {path} of experiment {rev} in {repo_dir} "
                f"(removed or garbage-collected? `dvc exp pull` it there): {err}"
            ) from None
        if list(curve.columns[:1]) != ["step"] or len(curve.columns) != 2:
            raise StudyError(f"{run_name}: {path} is not a dvclive step<TAB>value file")
        curve = curve.drop_duplicates("step", keep="last")
        curve = curve.set_axis(["step", column], axis=1).set_index("step")
        curves = curve if curves is None else curves.join(curve, how="outer")
    assert curves is not None
    curves = curves.sort_index().reset_index()
    curves.insert(0, "epoch", curves.pop("step") + 1)  # step 0: after epoch 1
    curves_dir.mkdir(parents=True, exist_ok=True)
    target = curves_dir / f"{run_name}.tsv"
    with replacing(target) as tmp:
        curves[CURVE_COLUMNS].to_csv(tmp, sep="\t", index=False)
    return target


def read_curves(path: Path) -> pd.DataFrame | None:
    """A curves/<name>.tsv, indexed by epoch; None when there is none."""
    if not path.is_file():
        return None
    curves = pd.read_csv(path, sep="\t")
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise StudyError(f"{path}: columns {missing} missing (expected {CURVE_COLUMNS})")
    return curves.set_index("epoch")


def _curve_at(curves: pd.DataFrame | None, column: str, epoch: int) -> float:
    if curves is None or epoch not in curves.index:
        return math.nan
    return float(curves.at[epoch, column])


def train_minutes_of(curves: pd.DataFrame | None, train_images: int | None) -> float:
    """Time of the training passes (not validation), estimated from each epoch's speed."""
    if curves is None or not train_images:
        return math.nan
    speed = curves["train/images_per_s"]
    if speed.isna().any() or (speed <= 0).any():
        return math.nan
    return float((train_images / speed).sum() / 60)


# -- tables -------------------------------------------------------------------------------


def _pct(value: Any) -> float:
    return math.nan if value is None else 100 * float(value)


def runs_table(
    runs: list[StudyRun], curves: dict[str, pd.DataFrame | None]
) -> tuple[pd.DataFrame, list[str]]:
    """One line per study run (accuracies in %, gaps in percentage points) and warnings
    (curves that do not match the run)."""
    warnings = []
    with_imagenet_train = any(
        get_dotted(r.experiment.evaluation, "custom.val_folder_imagenet_train") for r in runs
    )
    lines = []
    for run in runs:
        custom = run.experiment.evaluation.get("custom", {})
        run_curves = curves.get(run.name)
        epochs_run = custom.get("epochs_run")
        if run_curves is not None and epochs_run is not None and len(run_curves) != epochs_run:
            warnings.append(
                f"curves/{run.name}.tsv has {len(run_curves)} epochs but the run ran "
                f"{epochs_run}: stale? extract again with --curves-from-cache"
            )
        val = _pct(get_dotted(custom, "val_folder.accuracy"))
        train = _pct(get_dotted(custom, "train.accuracy"))
        line = {
            "experiment": run.name,
            "condition": run.condition,
            "seed": run.seed,
            "val_folder_accuracy": val,
            "imagenet_val_images_accuracy": _pct(
                get_dotted(custom, "val_folder_imagenet_val.accuracy")
            ),
        }
        if with_imagenet_train:
            line["imagenet_train_images_accuracy"] = _pct(
                get_dotted(custom, "val_folder_imagenet_train.accuracy")
            )
        line.update(
            {
                "train_accuracy_eval_mode": train,
                "gap_pp": train - val,
                "valid_accuracy_epoch1": 100 * _curve_at(run_curves, "valid/accuracy", 1),
                "valid_accuracy_epoch3": 100 * _curve_at(run_curves, "valid/accuracy", 3),
                "valid_loss_epoch3": _curve_at(run_curves, "valid/loss", 3),
                "valid_accuracy_epoch5": 100 * _curve_at(run_curves, "valid/accuracy", 5),
                "epochs_run": epochs_run,
                "stopped_early": custom.get("stopped_early"),
                "precision": _precision(run.experiment.evaluation, "custom"),
                "settings": settings_label(custom.get("differs_in_settings", "")),
                "train_minutes": train_minutes_of(run_curves, get_dotted(custom, "train.images")),
                "curves": run_curves is not None,
            }
        )
        lines.append(line)
    return pd.DataFrame(lines), warnings


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per condition: its seeds, and the val-folder accuracy's n, mean, sample std, min and
    max (%), the mean gap (pp) and the mean epochs run."""
    lines = []
    for condition in CONDITION_ORDER:
        group = table[table["condition"] == condition]
        accuracy = group["val_folder_accuracy"].astype(float)
        lines.append(
            {
                "condition": condition,
                "seeds": ", ".join(str(s) for s in sorted(group["seed"])),
                "n": len(group),
                "val_folder_mean": accuracy.mean(),
                "val_folder_std": accuracy.std(ddof=1),
                "val_folder_min": accuracy.min(),
                "val_folder_max": accuracy.max(),
                "gap_mean_pp": group["gap_pp"].astype(float).mean(),
                "epochs_run_mean": group["epochs_run"].astype(float).mean(),
            }
        )
    return pd.DataFrame(lines)


# -- tests --------------------------------------------------------------------------------


def paired_interval(differences: list[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean, sample std and the two-sided t interval of paired differences (n < 2: no
    interval, NaN bounds)."""
    n = len(differences)
    if n == 0:
        return Interval(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    series = pd.Series(differences, dtype=float)
    mean = float(series.mean())
    if n < 2:
        return Interval(n, mean, math.nan, math.nan, math.nan, math.nan)
    std = float(series.std(ddof=1))
    t = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    half = t * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half, t)


def verdict(interval: Interval) -> str:
    """Where the interval lies for a claim "difference > 0": above 0 supported, below 0
    contradicted, across 0 (or touching it) not resolved; fewer than 2 pairs not enough."""
    if interval.n < 2:
        return NOT_ENOUGH_RUNS
    if interval.low > 0:
        return SUPPORTED
    if interval.high < 0:
        return CONTRADICTED
    return NOT_RESOLVED


ALPHA = round(1 - CONFIDENCE, 12)  # a one-sided test's level: 0.05, not 0.050000000000000044


def p_value_verdict(p_greater: float, p_less: float, alpha: float = ALPHA) -> str:
    """A one-sided test of a claim "statistic > 0": its p-value below `alpha` supported,
    the opposite side's p-value below `alpha` contradicted, neither not resolved; a
    missing p-value (NaN: too few items to test) not enough runs."""
    if math.isnan(p_greater) or math.isnan(p_less):
        return NOT_ENOUGH_RUNS
    if p_greater < alpha:
        return SUPPORTED
    if p_less < alpha:
        return CONTRADICTED
    return NOT_RESOLVED


def _seeds_text(seeds: list[int]) -> str:
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"


def describe(interval: Interval, found: str, seeds: list[int], unit: str = "pp") -> str:
    """'supported: +5.10 pp, 95% CI [+2.00, +8.20], 3 seeds (42, 43, 44), sd 1.25 pp'."""
    if interval.n == 0:
        return f"{found}: no seed has runs of both conditions"
    if interval.n < 2:
        return (
            f"{found}: {interval.mean:+.2f} {unit} from {_seeds_text(seeds)}; an interval "
            "needs 2 seeds or more"
        )
    text = (
        f"{found}: {interval.mean:+.2f} {unit}, {CONFIDENCE:.0%} CI "
        f"[{interval.low:+.2f}, {interval.high:+.2f}], {_seeds_text(seeds)}, "
        f"sd of the differences {interval.std:.2f} {unit}"
    )
    return text + (", the interval includes 0" if found == NOT_RESOLVED else "")


def paired_differences(
    table: pd.DataFrame, minuend: str, subtrahend: str, column: str
) -> tuple[list[int], list[float], list[int]]:
    """(seeds, differences, seeds left out for a missing value): `column` of condition
    `minuend` minus that of `subtrahend`, for each seed with runs of both."""
    by_condition = {
        name: group.set_index("seed")[column] for name, group in table.groupby("condition")
    }
    first = by_condition.get(minuend, pd.Series(dtype=float))
    second = by_condition.get(subtrahend, pd.Series(dtype=float))
    seeds, differences, missing = [], [], []
    for seed in sorted(set(first.index) & set(second.index)):
        a, b = first[seed], second[seed]
        if pd.isna(a) or pd.isna(b):
            missing.append(int(seed))
            continue
        seeds.append(int(seed))
        differences.append(float(a - b))
    return seeds, differences, missing


@dataclass(frozen=True)
class TestSpec:
    """A conclusion tested as `minuend - subtrahend` of a column, claimed > 0."""

    key: str
    claim: str
    minuend: str
    subtrahend: str
    column: str
    metric: str
    needs_curves: bool = False


TESTS = (
    TestSpec(
        "C2",
        "augmentation improves results",
        "base",
        "no_augmentation",
        "val_folder_accuracy",
        "val-folder accuracy",
    ),
    TestSpec(
        "C3a",
        "ADAM learns faster",
        "adam_row",
        "base",
        "valid_accuracy_epoch3",
        "validation accuracy after epoch 3",
        needs_curves=True,
    ),
    TestSpec(
        "C3b",
        "ADAM ends up worse than SGDM",
        "base",
        "adam_row",
        "val_folder_accuracy",
        "final val-folder accuracy",
    ),
    TestSpec(
        "C4a",
        "dropout reduces overfitting",
        "no_dropout",
        "base",
        "gap_pp",
        "train (eval mode) minus val-folder accuracy gap",
    ),
    TestSpec(
        "C4b",
        "dropout improves val-folder accuracy (a supporting number for C4)",
        "base",
        "no_dropout",
        "val_folder_accuracy",
        "val-folder accuracy",
    ),
)


def run_test(spec: TestSpec, table: pd.DataFrame) -> TestResult:
    """One conclusion: paired differences over seeds, interval, verdict and its text."""
    seeds, differences, missing = paired_differences(
        table, spec.minuend, spec.subtrahend, spec.column
    )
    interval = paired_interval(differences)
    notes = []
    if spec.needs_curves and missing and not seeds:
        found = NO_CURVES
        text = (
            f"{NO_CURVES}: seeds {', '.join(map(str, missing))} have runs of both conditions "
            "but no curves with that epoch (extract them with --curves-from-cache REPO_DIR)"
        )
    else:
        found = verdict(interval)
        text = describe(interval, found, seeds)
        if missing:
            notes.append(
                f"left out for a missing value ({'no curves' if spec.needs_curves else 'n/a'}): "
                f"seeds {', '.join(map(str, missing))}"
            )
    if seeds:
        means = table[table["seed"].isin(seeds)].groupby("condition")[spec.column].mean()
        notes.append(
            f"means over those seeds: {spec.minuend} {means[spec.minuend]:.2f}, "
            f"{spec.subtrahend} {means[spec.subtrahend]:.2f}"
        )
    if spec.key == "C3a":
        for epoch in (1, 5):
            column = f"valid_accuracy_epoch{epoch}"
            other_seeds, other, _ = paired_differences(table, spec.minuend, spec.subtrahend, column)
            other_interval = paired_interval(other)
            notes.append(
                f"after epoch {epoch}: "
                + describe(other_interval, verdict(other_interval), other_seeds)
            )
    return TestResult(
        key=spec.key,
        claim=spec.claim,
        difference=f"{spec.minuend} minus {spec.subtrahend}, {spec.metric} (pp); claim: > 0",
        metric=spec.column,
        seeds=seeds,
        differences=differences,
        interval=interval,
        verdict=found,
        text=text,
        notes=notes,
    )


def pretrained_check(evaluation_path: Path, table: pd.DataFrame) -> dict:
    """C1: one fine-tuning run's val-folder accuracy against the base condition's seeds,
    and its fine-tuned vs zero-shot accuracy on the val folder's ImageNet-val and
    ImageNet-train images (the leakage check)."""
    try:
        evaluation = json.loads(Path(evaluation_path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise StudyError(f"--pretrained {evaluation_path}: cannot read it ({err})") from err
    google = evaluation.get("googlenet") if isinstance(evaluation, dict) else None
    if not google or get_dotted(google, "val_folder.accuracy") is None:
        raise StudyError(
            f"--pretrained {evaluation_path}: no googlenet.val_folder.accuracy (expected a "
            "metrics/evaluation.json of a fine-tuning run)"
        )
    fine_tuned = _pct(get_dotted(google, "val_folder.accuracy"))
    base = table.loc[table["condition"] == "base", "val_folder_accuracy"].astype(float)
    model = google.get("model") or google.get("weights") or "googlenet"
    result: dict[str, Any] = {
        "key": "C1",
        "claim": "the pretrained network does much better than the custom networks",
        "model": model,
        "pretrained": google.get("pretrained"),
        "weights_sha256": google.get("weights_sha256"),
        "epochs_run": google.get("epochs_run"),
        "settings": settings_label(google.get("differs_in_settings", "")),
        "fine_tuned_val_folder_accuracy": fine_tuned,
        "base_n": len(base),
        "base_mean": base.mean() if len(base) else math.nan,
        "base_min": base.min() if len(base) else math.nan,
        "base_max": base.max() if len(base) else math.nan,
    }
    result["difference_from_base_mean"] = fine_tuned - result["base_mean"]
    if not google.get("pretrained"):
        found = NOT_CHECKED
        text = f"{NOT_CHECKED}: {model} was not fine-tuned from pretrained weights"
    elif base.empty:
        found = NOT_ENOUGH_RUNS
        text = f"{NOT_ENOUGH_RUNS}: no run of the base condition to compare with"
    else:
        above_best, above_worst = fine_tuned - base.max(), fine_tuned - base.min()
        if above_best > 0:
            found = SUPPORTED
        elif above_worst < 0:
            found = CONTRADICTED
        else:
            found = NOT_RESOLVED
        text = (
            f"{found} (one fine-tuning run, no interval): {model} {fine_tuned:.2f}% vs the base "
            f"condition's mean {result['base_mean']:.2f}% over {len(base)} seeds "
            f"({result['difference_from_base_mean']:+.2f} pp; {above_best:+.2f} to "
            f"{above_worst:+.2f} pp against the best and worst seed); rule: supported when "
            "above every base seed, contradicted when below every one"
        )
    result.update(verdict=found, text=text)
    leakage = []
    for subset, label in (
        ("val_folder", "val folder (all images)"),
        ("val_folder_imagenet_val", "ImageNet-val images (never seen in pretraining)"),
        ("val_folder_imagenet_train", "ImageNet-train images (seen in pretraining)"),
    ):
        if get_dotted(google, subset) is None and get_dotted(google, f"zero_shot.{subset}") is None:
            continue
        column = {
            "val_folder": "val_folder_accuracy",
            "val_folder_imagenet_val": "imagenet_val_images_accuracy",
            "val_folder_imagenet_train": "imagenet_train_images_accuracy",
        }[subset]
        custom = (
            table.loc[table["condition"] == "base", column].mean() if column in table else math.nan
        )
        leakage.append(
            {
                "images": label,
                "count": get_dotted(google, f"{subset}.images")
                or get_dotted(google, f"zero_shot.{subset}.images"),
                "fine_tuned": _pct(get_dotted(google, f"{subset}.accuracy")),
                "zero_shot": _pct(get_dotted(google, f"zero_shot.{subset}.accuracy")),
                "custom_base_mean": custom,
            }
        )
    result["leakage"] = leakage
    return result


def precision_pair_check(spec: str, table: pd.DataFrame, runs: list[StudyRun]) -> dict:
    """bf16 vs fp32: an fp32 run (`FILE:EXPERIMENT`) of the base condition against the
    base condition's bf16 run of the same seed, judged against the seeds' spread."""
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise StudyError(f"--precision-pair {spec!r}: expected FP32_EXP_SHOW_JSON:EXPERIMENT_NAME")
    experiments = read_exp_show([Path(path_text)])
    if name not in experiments:
        raise StudyError(
            f"--precision-pair: no finished experiment {name!r} in {path_text} (found: "
            f"{', '.join(sorted(experiments)) or 'none'})"
        )
    fp32 = experiments[name]
    base = next(c for c in CONDITIONS if c.name == "base")
    wrong = [
        f"{key} is {_param(fp32.params, key)!r}, expected {expected!r}"
        for key, expected in base.params.items()
        if not _same(_param(fp32.params, key), expected)
    ]
    precision = _precision(fp32.evaluation, "custom")
    if precision != "fp32":
        wrong.append(f"its precision is {precision}, expected fp32")
    if wrong:
        raise StudyError(
            f"--precision-pair {name} ({path_text}) is not an fp32 run of the base condition: "
            + "; ".join(wrong)
        )
    seed = fp32.params.get("seed")
    partner = next((r for r in runs if r.condition == "base" and r.seed == seed), None)
    if partner is None:
        raise StudyError(
            f"--precision-pair {name}: seed {seed} has no run of the base condition in the "
            "study to compare with"
        )
    notes = []
    partner_precision = _precision(partner.experiment.evaluation, "custom")
    if partner_precision != "bf16":
        notes.append(f"{partner.name} was trained in {partner_precision}, not bf16")
    differing = [
        f"{key} {_param(fp32.params, key)!r} vs {_param(partner.experiment.params, key)!r}"
        for key in SHARED_SETTINGS
        if _param(fp32.params, key) != _param(partner.experiment.params, key)
    ]
    if differing:
        notes.append("the two runs also differ in " + "; ".join(differing))
    fp32_accuracy = _pct(get_dotted(fp32.evaluation, "custom.val_folder.accuracy"))
    bf16_accuracy = _pct(get_dotted(partner.experiment.evaluation, "custom.val_folder.accuracy"))
    difference = bf16_accuracy - fp32_accuracy
    base_accuracy = table.loc[table["condition"] == "base", "val_folder_accuracy"]
    std = float(base_accuracy.std(ddof=1)) if len(base_accuracy) >= 2 else math.nan
    rule = (
        f"rule: agrees when |bf16 - fp32| <= {PRECISION_SPREAD_FACTOR} x the base "
        f"condition's seed std"
    )
    if math.isnan(std):
        found = NOT_ENOUGH_RUNS
        text = (
            f"{NOT_ENOUGH_RUNS}: bf16 - fp32 = {difference:+.2f} pp (seed {seed}); the base "
            f"condition needs 2 seeds or more for a seed std ({rule})"
        )
    else:
        found = BF16_AGREES if abs(difference) <= PRECISION_SPREAD_FACTOR * std else BF16_DIFFERS
        text = (
            f"{found}: bf16 {bf16_accuracy:.2f}% ({partner.name}) - fp32 {fp32_accuracy:.2f}% "
            f"({name}) = {difference:+.2f} pp, seed {seed}; the base condition's seed std "
            f"{std:.2f} pp over {len(base_accuracy)} seeds ({rule}, "
            f"{PRECISION_SPREAD_FACTOR * std:.2f} pp)"
        )
    return {
        "fp32_experiment": name,
        "fp32_source": path_text,
        "bf16_experiment": partner.name,
        "seed": seed,
        "fp32_val_folder_accuracy": fp32_accuracy,
        "bf16_val_folder_accuracy": bf16_accuracy,
        "difference_pp": difference,
        "base_seed_std_pp": std,
        "rule_factor": PRECISION_SPREAD_FACTOR,
        "verdict": found,
        "text": text,
        "notes": notes,
    }


PRECISION_NAME = re.compile(r"^(?P<row>.+?)-precision-(?P<precision>bf16|fp32)-seed(?P<seed>\d+)$")


def precision_pairs_check(path: Path) -> dict:
    """bf16 vs fp32 over paired seeds: the experiments `<row>-precision-bf16-seed<N>` and
    `<row>-precision-fp32-seed<N>` of one `dvc exp show --json` file (one commit, one
    machine: scripts/run_precision_cpu.sh). Each arm's recorded precision is checked; the
    paired differences (bf16 - fp32) are judged by the same rule as a single pair, on
    their mean, against the fp32 arm's seed std, with their t interval beside it."""
    arms: dict[str, dict[int, Experiment]] = {"bf16": {}, "fp32": {}}
    for name, experiment in read_exp_show([path]).items():
        match = PRECISION_NAME.match(name)
        if match:
            arms[match["precision"]][int(match["seed"])] = experiment
    wrong = [
        f"{experiment.name} was trained in {_precision(experiment.evaluation, 'custom')}"
        for arm, runs in arms.items()
        for experiment in runs.values()
        if _precision(experiment.evaluation, "custom") != arm
    ]
    if wrong:
        raise StudyError(f"--precision-pairs {path}: " + "; ".join(wrong))
    seeds = sorted(set(arms["bf16"]) & set(arms["fp32"]))
    if not seeds:
        raise StudyError(
            f"--precision-pairs {path}: no seed with both <row>-precision-bf16-seed<N> and "
            "<row>-precision-fp32-seed<N> finished"
        )
    notes = []
    for seed in seeds:
        bf16, fp32 = arms["bf16"][seed], arms["fp32"][seed]
        differing = [
            f"{key} {_param(bf16.params, key)!r} vs {_param(fp32.params, key)!r}"
            for key in (*SHARED_SETTINGS, "network", "seed")
            if _param(bf16.params, key) != _param(fp32.params, key)
        ]
        if differing:
            notes.append(f"seed {seed}: the two runs also differ in " + "; ".join(differing))

    def accuracy(experiment: Experiment) -> float:
        return _pct(get_dotted(experiment.evaluation, "custom.val_folder.accuracy"))

    bf16_acc = [accuracy(arms["bf16"][seed]) for seed in seeds]
    fp32_acc = [accuracy(arms["fp32"][seed]) for seed in seeds]
    differences = [b - f for b, f in zip(bf16_acc, fp32_acc, strict=True)]
    interval = paired_interval(differences)
    std = float(pd.Series(fp32_acc).std(ddof=1)) if len(seeds) >= 2 else math.nan
    margin = PRECISION_SPREAD_FACTOR * std
    rule = (
        f"rule: agrees when |mean(bf16 - fp32)| <= {PRECISION_SPREAD_FACTOR} x the fp32 "
        "runs' seed std"
    )
    pairs = ", ".join(
        f"seed {seed}: {b:.2f}% vs {f:.2f}%"
        for seed, b, f in zip(seeds, bf16_acc, fp32_acc, strict=True)
    )
    if math.isnan(std):
        found = NOT_ENOUGH_RUNS
        text = f"{NOT_ENOUGH_RUNS}: one seed ({pairs}); a seed std needs 2 or more ({rule})"
    else:
        found = BF16_AGREES if abs(interval.mean) <= margin else BF16_DIFFERS
        text = (
            f"{found}: bf16 - fp32 = {interval.mean:+.2f} pp, mean over {len(seeds)} paired "
            f"seeds ({pairs}), {CONFIDENCE:.0%} t interval [{interval.low:+.2f}, "
            f"{interval.high:+.2f}] pp; the fp32 runs' seed std {std:.2f} pp ({rule}, "
            f"{margin:.2f} pp)"
        )
    return {
        "source": str(path),
        "seeds": seeds,
        "bf16_experiments": [arms["bf16"][seed].name for seed in seeds],
        "fp32_experiments": [arms["fp32"][seed].name for seed in seeds],
        "bf16_val_folder_accuracy": bf16_acc,
        "fp32_val_folder_accuracy": fp32_acc,
        "differences_pp": differences,
        "mean_pp": interval.mean,
        "ci95_pp": [interval.low, interval.high],
        "fp32_seed_std_pp": std,
        "rule_factor": PRECISION_SPREAD_FACTOR,
        "verdict": found,
        "text": text,
        "notes": notes,
    }


# -- output -------------------------------------------------------------------------------


def json_ready(value: Any) -> Any:
    """JSON-ready: NaN as null, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def markdown_table(table: pd.DataFrame) -> str:
    """A table as Markdown: 2 decimals, "n/a" for a missing value."""
    shown = table.astype(object).where(table.notna(), None)
    return shown.to_markdown(index=False, floatfmt=".2f", missingval="n/a")


def _write_text(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    with replacing(path) as tmp:
        table.to_csv(tmp, index=False)


def conclusions_markdown(
    tests: list[TestResult],
    pretrained: dict | None,
    precision: dict | None,
    warnings: list[str],
) -> str:
    """study_conclusions.md: each test's verdict with how sure, then C1 and the
    precision pair when they were asked for."""
    lines = [
        "# The report's conclusions, re-tested with several seeds",
        "",
        "Each test pairs runs by seed (only seeds with runs of both conditions) and takes the "
        "mean difference in percentage points (pp) with its "
        f"{CONFIDENCE:.0%} two-sided t interval (t quantile with n - 1 degrees of freedom). "
        "Verdict: supported when the interval lies entirely on the side the report claims, "
        "contradicted when entirely on the other side, not resolved when it includes 0, not "
        "enough runs below 2 paired seeds.",
        "",
    ]
    if warnings:
        lines += ["**Warnings**", "", *[f"- {w}" for w in warnings], ""]
    for test in tests:
        lines.append(f"- **{test.key}. {test.claim}** ({test.difference}): {test.text}")
        lines += [f"  - {note}" for note in test.notes]
    if pretrained is not None:
        lines += ["", f"## C1. {pretrained['claim']}", "", f"- **C1**: {pretrained['text']}"]
        lines.append(
            f"- {pretrained['model']}, pretrained {pretrained['pretrained']}, weights sha256 "
            f"{pretrained['weights_sha256'] or 'n/a'}, {pretrained['epochs_run']} epochs, "
            f"{pretrained['settings']}"
        )
        if pretrained["leakage"]:
            leakage = pd.DataFrame(pretrained["leakage"]).rename(
                columns={
                    "fine_tuned": "fine-tuned %",
                    "zero_shot": "zero-shot %",
                    "custom_base_mean": "custom base mean %",
                }
            )
            lines += [
                "",
                "Leakage check: a pretrained network has seen ImageNet's train images in "
                "pretraining, never the ILSVRC2012_val images.",
                "",
                markdown_table(leakage),
            ]
    if precision is not None:
        lines += ["", "## bf16 vs fp32", "", f"- **precision**: {precision['text']}"]
        lines += [f"  - {note}" for note in precision["notes"]]
    return "\n".join(lines) + "\n"


def write_outputs(
    out: Path,
    table: pd.DataFrame,
    summary: pd.DataFrame,
    tests: list[TestResult],
    pretrained: dict | None,
    precision: dict | None,
    warnings: list[str],
    inputs: list[str],
) -> str:
    """Write the study's files to `out` (each atomically); return the conclusions text."""
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "study_runs.csv", table)
    _write_text(out / "study_runs.md", UNITS + "\n\n" + markdown_table(table) + "\n")
    _write_csv(out / "study_summary.csv", summary)
    _write_text(out / "study_summary.md", UNITS + "\n\n" + markdown_table(summary) + "\n")
    text = conclusions_markdown(tests, pretrained, precision, warnings)
    _write_text(out / "study_conclusions.md", text)
    record = {
        "inputs": inputs,
        "confidence": CONFIDENCE,
        "warnings": warnings,
        "tests": [
            {
                "key": t.key,
                "claim": t.claim,
                "difference": t.difference,
                "metric": t.metric,
                "seeds": t.seeds,
                "differences_pp": t.differences,
                "n": t.interval.n,
                "mean_pp": t.interval.mean,
                "std_pp": t.interval.std,
                "ci95_pp": [t.interval.low, t.interval.high],
                "t_quantile": t.interval.t_quantile,
                "verdict": t.verdict,
                "text": t.text,
                "notes": t.notes,
            }
            for t in tests
        ],
        "pretrained": pretrained,
        "precision_pair": precision,
    }
    _write_text(
        out / "study_conclusions.json",
        json.dumps(json_ready(record), indent=2, allow_nan=False) + "\n",
    )
    return text


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (2: a fault in the inputs)."""
    parser = argparse.ArgumentParser(
        prog="python -m imagenette_repro.report.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="EXP_SHOW_JSON")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--curves-from-cache",
        type=Path,
        metavar="REPO_DIR",
        help="the DVC repository whose experiments these are: each study run's dvclive "
        "curves are read from it (dvc.api) into OUT/curves",
    )
    parser.add_argument(
        "--pretrained",
        type=Path,
        metavar="EVALUATION_JSON",
        help="a fine-tuning run's metrics/evaluation.json, for conclusion 1",
    )
    parser.add_argument(
        "--precision-pair",
        metavar="FP32_EXP_SHOW_JSON:EXPERIMENT",
        help="an fp32 run of the base condition, compared with the bf16 run of its seed",
    )
    parser.add_argument(
        "--precision-pairs",
        type=Path,
        metavar="EXP_SHOW_JSON",
        help="bf16 and fp32 runs of one row over several seeds "
        "(<row>-precision-{bf16,fp32}-seed<N>), in place of --precision-pair",
    )
    args = parser.parse_args(argv)
    try:
        runs = study_runs(read_exp_show(args.inputs))
        if not runs:
            raise StudyError(
                "no finished study experiment (<row>-study[-<variant>]-seed<N>) in "
                + ", ".join(map(str, args.inputs))
            )
        curves_dir = args.out / "curves"
        if args.curves_from_cache:
            for run in runs:
                # An earlier batch's curves, kept in OUT, stay (its cache may be elsewhere).
                if not (curves_dir / f"{run.name}.tsv").is_file():
                    extract_curves(run.name, run.experiment.rev, args.curves_from_cache, curves_dir)
        curves = {run.name: read_curves(curves_dir / f"{run.name}.tsv") for run in runs}
        table, warnings = runs_table(runs, curves)
        warnings = shared_setting_warnings(runs) + warnings
        summary = summary_table(table)
        tests = [run_test(spec, table) for spec in TESTS]
        pretrained = pretrained_check(args.pretrained, table) if args.pretrained else None
        precision = (
            precision_pairs_check(args.precision_pairs)
            if args.precision_pairs
            else precision_pair_check(args.precision_pair, table, runs)
            if args.precision_pair
            else None
        )
        text = write_outputs(
            args.out,
            table,
            summary,
            tests,
            pretrained,
            precision,
            warnings,
            [str(p) for p in args.inputs],
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(markdown_table(summary))
    print()
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
