"""The conclusions study, from records shaped like `dvc exp show --json` and a hand-built
DVC cache (no DVC runs)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dvc.repo import Repo

from imagenette_repro.report import study
from imagenette_repro.report.study import (
    CONTRADICTED,
    NO_CURVES,
    NOT_ENOUGH_RUNS,
    NOT_RESOLVED,
    SUPPORTED,
    TRAIN_CURVES_OUT,
    StudyError,
)

ROOT = Path(__file__).resolve().parents[1]
REAL_EXP_SHOW = ROOT / "results/cpu-32px-val-folder/exp_show.json"
REAL_PRECISION_PAIRS = ROOT / "results/cpu-32px-precision/exp_show.json"
T_975 = {2: 4.302652729911275, 3: 3.182446305284263}  # t quantiles (tables), by df

SGDM = {"optimizer": "sgdm", "learn_rate": 0.001, "patience": 4, "drop_period": 4}
ADAM = {"optimizer": "adam", "learn_rate": 0.0001, "patience": 3, "drop_period": 3}
# condition: (name part, network, row columns, augmentation, dropout)
CONDITIONS = {
    "base": ("network_84_8153-study", "network_84_8153", SGDM, True, True),
    "no_augmentation": ("network_84_8153-study-no-aug", "network_84_8153", SGDM, False, True),
    "adam_row": ("network_82_828-study", "network_82_828", ADAM, True, True),
    "no_dropout": ("network_84_8153-study-no-dropout", "network_84_8153", SGDM, True, False),
}
SEEDS = (42, 43, 44)
# Val-folder and train (eval mode) accuracy in %, per condition, for SEEDS.
VAL = {
    "base": [62.0, 63.5, 61.0],
    "no_augmentation": [55.0, 57.0, 56.5],  # C2: +7.0, +6.5, +4.5: supported
    "adam_row": [64.0, 66.0, 62.5],  # C3b: -2.0, -2.5, -1.5: contradicted
    "no_dropout": [61.5, 62.0, 59.0],  # C4b: +0.5, +1.5, +2.0: not resolved (n = 3)
}
TRAIN = {
    "base": [70.0, 71.0, 69.0],
    "no_augmentation": [80.0, 82.0, 81.0],
    "adam_row": [72.0, 73.0, 70.0],
    "no_dropout": [85.0, 87.0, 84.0],
}
EPOCHS = 6
TRAIN_IMAGES = 9469
IMAGES_PER_S = 200.0
# Validation accuracy per epoch (fractions): ADAM ahead early (C3a).
VALID_CURVE = {
    "adam_row": [0.40, 0.50, 0.56, 0.60, 0.62, 0.64],
    "other": [0.30, 0.40, 0.45, 0.52, 0.57, 0.61],
}


def params_for(condition: str, seed: int, **changes) -> dict:
    _, network, columns, augmentation, dropout = CONDITIONS[condition]
    params = {
        "seed": seed,
        "network": network,
        **columns,
        "drop_rate_factor": 0.65,
        "image_augmentation": augmentation,
        "data": {"md5": "003aed9aab56a5804f410d9443dba23b", "protocol": "val_folder"},
        "train": {"dropout": dropout, "init": "glorot", "max_epochs": 30, "batch_size": 128},
    }
    params["data"]["input_size"] = 32
    for key, value in changes.items():
        if key in ("dropout", "init"):
            params["train"][key] = value
        elif key == "seed_param":
            params["seed"] = value
        else:
            params[key] = value
    return params


def rev(
    name: str,
    params: dict,
    val: float,
    train: float,
    timestamp: str = "2026-12-01T10:00:00",
    precision: str | None = "bf16",
    commit: str | None = None,
    epochs: int = EPOCHS,
    imagenet_train: float | None = None,
) -> dict:
    """One experiment's `revs` entry as `dvc exp show --json` writes it (accuracies in %)."""
    custom = {
        "val_folder": {"accuracy": val / 100, "loss": 1.0, "images": 3925},
        "val_folder_imagenet_val": {"accuracy": (val + 1) / 100, "loss": 1.0, "images": 134},
        "train": {"accuracy": train / 100, "loss": 0.8, "images": TRAIN_IMAGES},
        "epochs_run": epochs,
        "stopped_early": epochs < 30,
        "kept_epoch": epochs,
        "differs_in_settings": "32 px, init glorot",
        "is_report_row": False,
        "network": params["network"],
    }
    if precision is not None:
        custom["precision"] = precision
    if imagenet_train is not None:
        custom["val_folder_imagenet_train"] = {"accuracy": imagenet_train / 100, "images": 366}
    outs = {"data/models/custom.pt": {"hash": "ee0a5ea0c753275dc9c5dcbffaedb6c0"}}
    return {
        "rev": commit or hashlib.sha1(name.encode()).hexdigest(),
        "name": name,
        "data": {
            "rev": "x",
            "timestamp": timestamp,
            "params": {"params.yaml": {"data": params}},
            "metrics": {"metrics/evaluation.json": {"data": {"custom": custom, "data": {}}}},
            "outs": outs,
        },
    }


def exp_show(revs: list[dict]) -> list[dict]:
    """A whole `dvc exp show --json`: the workspace, a commit with the experiments, and the
    null and unfinished entries DVC writes for queued or failed ones."""
    queued = {"rev": "abc", "name": "network_84_8153-study-seed99", "data": None}
    failed = {
        "rev": "def",
        "name": "network_84_8153-study-seed98",
        "data": {"timestamp": None, "params": {"params.yaml": {"data": {"seed": 98}}}},
    }
    return [
        {"rev": "workspace", "name": None, "data": {"timestamp": None}},
        {
            "rev": "20bea015c2dd118d81803a2f874ad8a9b8496225",
            "name": "main",
            "data": {},
            "error": None,
            "experiments": [
                *[{"name": r["name"], "executor": None, "revs": [r]} for r in revs],
                {"name": "queued", "executor": None, "revs": [queued, None]},
                {"name": "failed", "executor": None, "revs": [failed]},
                None,
            ],
        },
        {"rev": "0000000", "name": None, "data": None, "experiments": None},
    ]


def study_revs(commits: dict[str, str] | None = None) -> list[dict]:
    revs = []
    for condition, (prefix, *_rest) in CONDITIONS.items():
        for i, seed in enumerate(SEEDS):
            name = f"{prefix}-seed{seed}"
            revs.append(
                rev(
                    name,
                    params_for(condition, seed),
                    VAL[condition][i],
                    TRAIN[condition][i],
                    commit=(commits or {}).get(name),
                )
            )
    return revs


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value))
    return path


# -- a DVC repository whose commits hold the runs' curves -----------------------------------


def tsv(name: str, values: list[float]) -> bytes:
    return ("step\t" + name + "\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(values))).encode()


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=study", "-c", "user.email=study@example.org", *args]
    return subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True).stdout


def commit_curves(repo: Path, valid_accuracy: list[float], skip: str | None = None) -> str:
    """dvclive's metrics/train_custom of one run, tracked by DVC in `repo` (made on first
    use) and committed, as an experiment's commit holds it; returns the commit. `skip`: a
    file whose object is then deleted from DVC's cache."""
    if not (repo / ".dvc").is_dir():
        repo.mkdir(parents=True)
        git(repo, "init", "-q")
        subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
        subprocess.run(
            [sys.executable, "-m", "dvc", "config", "core.analytics", "false"], cwd=repo, check=True
        )
    n = len(valid_accuracy)
    files = {
        "plots/metrics/valid/accuracy.tsv": tsv("accuracy", valid_accuracy),
        "plots/metrics/valid/loss.tsv": tsv("loss", [2.0 - 0.1 * i for i in range(n)]),
        "plots/metrics/train/accuracy.tsv": tsv("accuracy", [0.3 + 0.05 * i for i in range(n)]),
        "plots/metrics/train/loss.tsv": tsv("loss", [2.1 - 0.1 * i for i in range(n)]),
        "plots/metrics/train/images_per_s.tsv": tsv("images_per_s", [IMAGES_PER_S] * n),
        "plots/metrics/learn_rate.tsv": tsv(
            "learn_rate", [0.001 if i < 4 else 0.00065 for i in range(n)]
        ),
        "metrics.json": b"{}",
    }
    folder = repo / TRAIN_CURVES_OUT
    shutil.rmtree(folder, ignore_errors=True)
    for relpath, data in files.items():
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_bytes(data)
    with Repo(str(repo)) as dvc:
        dvc.add(str(folder))
        if skip:
            Path(dvc.cache.local.oid_to_path(hashlib.md5(files[skip]).hexdigest())).unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a run")
    return git(repo, "rev-parse", "HEAD").strip()


def commit_runs(repo: Path) -> dict[str, str]:
    """Every study run's curves committed in `repo`: name -> commit."""
    commits = {}
    for condition, (prefix, *_rest) in CONDITIONS.items():
        curve = VALID_CURVE["adam_row" if condition == "adam_row" else "other"]
        for i, seed in enumerate(SEEDS):
            # a per-seed wobble keeps the differences from being all equal
            commits[f"{prefix}-seed{seed}"] = commit_curves(repo, [v + 0.01 * i for v in curve])
    return commits


@pytest.fixture
def batch(tmp_path) -> Path:
    return write_json(tmp_path / "exp_show_batch1.json", exp_show(study_revs()))


def load_table(paths: list[Path], curves_dir: Path | None = None) -> pd.DataFrame:
    runs = study.study_runs(study.read_exp_show(paths))
    curves = {}
    if curves_dir is not None:
        curves = {r.name: study.read_curves(curves_dir / f"{r.name}.tsv") for r in runs}
    table, _ = study.runs_table(runs, curves)
    return table


# -- tests ---------------------------------------------------------------------------------


def test_summary_matches_an_independent_computation(batch):
    table = load_table([batch])
    assert len(table) == 12
    summary = study.summary_table(table).set_index("condition")
    for condition, values in VAL.items():
        line = summary.loc[condition]
        assert line["seeds"] == "42, 43, 44"
        assert line["n"] == 3
        assert line["val_folder_mean"] == pytest.approx(np.mean(values))
        assert line["val_folder_std"] == pytest.approx(np.std(values, ddof=1))
        assert line["val_folder_min"] == pytest.approx(min(values))
        assert line["val_folder_max"] == pytest.approx(max(values))
        gaps = np.array(TRAIN[condition]) - np.array(values)
        assert line["gap_mean_pp"] == pytest.approx(gaps.mean())
        assert line["epochs_run_mean"] == EPOCHS


def test_paired_tests_match_an_independent_computation(batch):
    table = load_table([batch])
    cases = {
        "C2": (np.array(VAL["base"]) - VAL["no_augmentation"], SUPPORTED),
        "C3b": (np.array(VAL["base"]) - VAL["adam_row"], CONTRADICTED),
        "C4a": (
            (np.array(TRAIN["no_dropout"]) - VAL["no_dropout"])
            - (np.array(TRAIN["base"]) - VAL["base"]),
            SUPPORTED,
        ),
        "C4b": (np.array(VAL["base"]) - VAL["no_dropout"], NOT_RESOLVED),
    }
    results = {spec.key: study.run_test(spec, table) for spec in study.TESTS}
    for key, (differences, expected) in cases.items():
        result = results[key]
        mean, sd = differences.mean(), differences.std(ddof=1)
        half = T_975[2] * sd / np.sqrt(3)
        assert result.seeds == list(SEEDS)
        assert result.differences == pytest.approx(list(differences))
        assert result.interval.mean == pytest.approx(mean)
        assert result.interval.std == pytest.approx(sd)
        assert result.interval.low == pytest.approx(mean - half)
        assert result.interval.high == pytest.approx(mean + half)
        assert result.verdict == expected, (key, result.text)
        assert result.text.startswith(f"{expected}: {mean:+.2f} pp, 95% CI [")
        assert "3 seeds (42, 43, 44)" in result.text
    # no curves: the curve-based test says so instead of failing
    assert results["C3a"].verdict == NO_CURVES
    assert results["C3a"].text.startswith("no curves")


@pytest.mark.parametrize(
    ("differences", "expected"),
    [
        ([5.0, 6.0, 7.0], SUPPORTED),
        ([-5.0, -6.5, -7.0], CONTRADICTED),
        ([-1.0, 2.0, 0.5], NOT_RESOLVED),
        ([0.1, 9.0], NOT_RESOLVED),  # positive mean, but t(0.975, 1) = 12.7 spans 0
        ([3.0], NOT_ENOUGH_RUNS),
        ([], NOT_ENOUGH_RUNS),
    ],
)
def test_verdict_sides(differences, expected):
    interval = study.paired_interval(differences)
    assert study.verdict(interval) == expected
    assert interval.n == len(differences)


def test_interval_uses_the_t_quantile():
    differences = [1.0, 2.0, 4.0, 5.0]
    interval = study.paired_interval(differences)
    half = T_975[3] * np.std(differences, ddof=1) / 2
    assert (interval.low, interval.high) == pytest.approx((3.0 - half, 3.0 + half))
    assert interval.t_quantile == pytest.approx(T_975[3])


def test_pairs_only_seeds_present_in_both_conditions(tmp_path):
    revs = study_revs()
    # no_augmentation only for seed 42: one pair, not enough for an interval
    revs = [r for r in revs if "-no-aug-" not in r["name"] or r["name"].endswith("seed42")]
    table = load_table([write_json(tmp_path / "b.json", exp_show(revs))])
    result = study.run_test(study.TESTS[0], table)
    assert result.key == "C2"
    assert result.seeds == [42]
    assert result.verdict == NOT_ENOUGH_RUNS
    assert result.text.startswith(f"{NOT_ENOUGH_RUNS}: +7.00 pp from 1 seed (42)")


def test_merging_batches_keeps_the_newest_run(tmp_path):
    name = "network_84_8153-study-seed42"
    old = rev(name, params_for("base", 42), 50.0, 60.0, timestamp="2026-12-01T09:00:00")
    new = rev(name, params_for("base", 42), 62.0, 70.0, timestamp="2026-12-02T09:00:00")
    other = rev("network_84_8153-study-seed43", params_for("base", 43), 63.5, 71.0)
    first = write_json(tmp_path / "batch1.json", exp_show([old, other]))
    second = write_json(tmp_path / "batch2.json", exp_show([new]))
    for order in ([first, second], [second, first]):  # the newer wins, whatever the order
        table = load_table(order).set_index("experiment")
        assert sorted(table.index) == [name, "network_84_8153-study-seed43"]
        assert table.loc[name, "val_folder_accuracy"] == pytest.approx(62.0)


def test_running_experiments_are_left_out(tmp_path):
    # While it runs, `dvc exp show` gives an experiment its parent commit's metrics.
    shown = exp_show([rev("network_84_8153-study-seed42", params_for("base", 42), 62.0, 70.0)])
    running = rev("network_82_828-study-seed42", params_for("adam_row", 42), 33.3, 40.0)
    shown[1]["experiments"].append(
        {"name": running["name"], "executor": {"state": "running"}, "revs": [running]}
    )
    table = load_table([write_json(tmp_path / "b.json", shown)])
    assert list(table["experiment"]) == ["network_84_8153-study-seed42"]


def test_other_experiments_are_ignored(tmp_path):
    revs = [
        rev("network_84_8153-study-seed42", params_for("base", 42), 62.0, 70.0),
        rev("network_84_8153-glorot", params_for("base", 42), 62.7, 68.9),
        rev(
            "network_79_0828-study-seed42", params_for("base", 42, network="network_79_0828"), 1, 2
        ),
        rev("network_84_8153-study-other-seed42", params_for("base", 42), 1.0, 2.0),
        rev("network_84_8153-study-seed42-rerun", params_for("base", 42), 1.0, 2.0),
    ]
    table = load_table([write_json(tmp_path / "b.json", exp_show(revs))])
    assert list(table["experiment"]) == ["network_84_8153-study-seed42"]
    assert list(table["condition"]) == ["base"]


@pytest.mark.parametrize(
    ("condition", "changes", "message"),
    [
        ("no_augmentation", {"image_augmentation": True}, "image_augmentation is True"),
        ("no_dropout", {"dropout": True}, "train.dropout is True"),
        ("adam_row", {"learn_rate": 0.001}, "learn_rate is 0.001"),
        ("base", {"optimizer": "adam"}, "optimizer is 'adam'"),
        ("base", {"seed_param": 7}, "seed is 7, the name says 42"),
    ],
)
def test_params_that_disagree_with_the_name_are_an_error(tmp_path, condition, changes, message):
    name = f"{CONDITIONS[condition][0]}-seed42"
    revs = [rev(name, params_for(condition, 42, **changes), 60.0, 70.0)]
    path = write_json(tmp_path / "b.json", exp_show(revs))
    with pytest.raises(StudyError) as caught:
        study.study_runs(study.read_exp_show([path]))
    assert name in str(caught.value)
    assert f"condition {condition}" in str(caught.value)
    assert message in str(caught.value)


def test_missing_dropout_param_counts_as_dropout_on(tmp_path):
    params = params_for("base", 42)
    del params["train"]["dropout"]  # runs from before train.dropout existed
    path = write_json(
        tmp_path / "b.json", exp_show([rev("network_84_8153-study-seed42", params, 1, 2)])
    )
    assert [r.condition for r in study.study_runs(study.read_exp_show([path]))] == ["base"]


def test_curves_are_read_from_the_experiments_commit(tmp_path):
    repo = tmp_path / "repo"
    curve = [0.30, 0.40, 0.45, 0.52, 0.57]
    commit = commit_curves(repo, curve)
    commit_curves(repo, [0.9, 0.9])  # a later run: the first one's commit still gives its own
    shutil.rmtree(repo / TRAIN_CURVES_OUT)  # read from DVC's records, not the workspace
    out = study.extract_curves("run-a", commit, repo, tmp_path)
    assert out == tmp_path / "run-a.tsv"
    assert not list(tmp_path.glob(".*.tmp"))
    written = pd.read_csv(out, sep="\t")
    assert list(written.columns) == study.CURVE_COLUMNS
    assert list(written["epoch"]) == [1, 2, 3, 4, 5]
    assert list(written["valid/accuracy"]) == pytest.approx(curve)
    assert list(written["learn_rate"]) == pytest.approx([0.001] * 4 + [0.00065])
    assert list(written["train/images_per_s"]) == [IMAGES_PER_S] * 5


def test_curves_dvc_cannot_give_name_the_run_and_the_file(tmp_path):
    repo = tmp_path / "repo"
    first = commit_curves(repo, [0.3, 0.4])
    broken = commit_curves(repo, [0.5, 0.6], skip="plots/metrics/valid/loss.tsv")
    curves = tmp_path / "curves"
    with pytest.raises(StudyError, match=r"run-b: .*metrics/train_custom/plots/metrics/valid/loss"):
        study.extract_curves("run-b", broken, repo, curves)
    with pytest.raises(StudyError, match=f"run-c: .*experiment {'0' * 40} in {repo}"):
        study.extract_curves("run-c", "0" * 40, repo, curves)
    git(repo, "checkout", "-q", first)
    git(repo, "rm", "-q", "metrics/train_custom.dvc")
    git(repo, "commit", "-qm", "no curves")
    bare = git(repo, "rev-parse", "HEAD").strip()
    with pytest.raises(StudyError, match="run-d: .*metrics/train_custom/plots/metrics/"):
        study.extract_curves("run-d", bare, repo, curves)
    assert not curves.exists() or not list(curves.iterdir())


@pytest.mark.e2e  # a DVC repository with a commit per run
def test_curve_based_numbers(tmp_path):
    repo = tmp_path / "repo"
    path = write_json(tmp_path / "b.json", exp_show(study_revs(commit_runs(repo))))
    runs = study.study_runs(study.read_exp_show([path]))
    for run in runs:
        study.extract_curves(run.name, run.experiment.rev, repo, tmp_path / "curves")
    table = load_table([path], tmp_path / "curves").set_index("experiment")
    base = table.loc["network_84_8153-study-seed43"]
    assert base["valid_accuracy_epoch3"] == pytest.approx(100 * (0.45 + 0.01))
    assert base["valid_loss_epoch3"] == pytest.approx(1.8)
    assert base["train_minutes"] == pytest.approx(EPOCHS * TRAIN_IMAGES / IMAGES_PER_S / 60)
    c3a = study.run_test(study.TESTS[1], table.reset_index())
    assert c3a.key == "C3a"
    assert c3a.differences == pytest.approx([11.0, 11.0, 11.0])  # 0.56 - 0.45 per seed
    assert c3a.verdict == SUPPORTED
    assert any(n.startswith("after epoch 1: supported: +10.00 pp") for n in c3a.notes)
    assert any(n.startswith("after epoch 5: supported: +5.00 pp") for n in c3a.notes)


def test_stale_curves_are_flagged(tmp_path, batch):
    curves_dir = tmp_path / "curves"
    curves_dir.mkdir()
    study.extract_curves(
        "network_84_8153-study-seed42",
        commit_curves(tmp_path / "repo", [0.3, 0.4]),
        tmp_path / "repo",
        curves_dir,
    )
    runs = study.study_runs(study.read_exp_show([batch]))
    curves = {r.name: study.read_curves(curves_dir / f"{r.name}.tsv") for r in runs}
    _, warnings = study.runs_table(runs, curves)
    assert warnings == [
        f"curves/network_84_8153-study-seed42.tsv has 2 epochs but the run ran {EPOCHS}: "
        "stale? extract again with --curves-from-cache"
    ]


def fp32_file(tmp_path: Path, val: float, precision: str | None = None) -> Path:
    fp32 = rev("network_84_8153-glorot", params_for("base", 42), val, 69.0, precision=precision)
    return write_json(tmp_path / "fp32.json", exp_show([fp32]))


@pytest.mark.parametrize(
    ("fp32_val", "expected"), [(62.5, study.BF16_AGREES), (57.0, study.BF16_DIFFERS)]
)
def test_precision_pair(tmp_path, batch, fp32_val, expected):
    runs = study.study_runs(study.read_exp_show([batch]))
    table, _ = study.runs_table(runs, {})
    spec = f"{fp32_file(tmp_path, fp32_val)}:network_84_8153-glorot"
    check = study.precision_pair_check(spec, table, runs)
    std = np.std(VAL["base"], ddof=1)  # 1.26 pp: agrees within 2.52 pp
    assert check["difference_pp"] == pytest.approx(62.0 - fp32_val)
    assert check["base_seed_std_pp"] == pytest.approx(std)
    assert check["bf16_experiment"] == "network_84_8153-study-seed42"
    assert check["verdict"] == expected
    assert "rule: agrees when |bf16 - fp32| <= 2 x the base condition's seed std" in check["text"]


def test_precision_pair_with_the_real_fp32_record(batch):
    runs = study.study_runs(study.read_exp_show([batch]))
    table, _ = study.runs_table(runs, {})
    check = study.precision_pair_check(f"{REAL_EXP_SHOW}:network_84_8153-glorot", table, runs)
    assert check["fp32_val_folder_accuracy"] == pytest.approx(62.67515923566879)
    assert check["seed"] == 42
    assert check["verdict"] == study.BF16_AGREES  # 62.0 vs 62.68


def test_precision_pair_refuses_a_run_that_is_not_fp32(tmp_path, batch):
    runs = study.study_runs(study.read_exp_show([batch]))
    table, _ = study.runs_table(runs, {})
    spec = f"{fp32_file(tmp_path, 62.5, precision='bf16')}:network_84_8153-glorot"
    with pytest.raises(StudyError, match="precision is bf16, expected fp32"):
        study.precision_pair_check(spec, table, runs)
    with pytest.raises(StudyError, match="no finished experiment 'nope'"):
        study.precision_pair_check(f"{REAL_EXP_SHOW}:nope", table, runs)


def test_precision_pairs_of_the_committed_record_give_the_committed_verdict():
    """The committed pairs, as `dvc exp show --json` wrote them, differ in precision only and
    give the verdict the committed conclusions state (nothing copied by hand)."""
    check = study.precision_pairs_check(REAL_PRECISION_PAIRS)
    committed = json.loads(
        (ROOT / "results/cpu-32px-conclusions/study_conclusions.json").read_text()
    )
    assert check["seeds"] == [42, 43, 44]
    assert check["notes"] == []  # the two arms of each seed differ in nothing else checked
    assert (
        check["bf16_val_folder_accuracy"] == committed["precision_pair"]["bf16_val_folder_accuracy"]
    )
    assert (
        check["fp32_val_folder_accuracy"] == committed["precision_pair"]["fp32_val_folder_accuracy"]
    )
    assert check["verdict"] == committed["precision_pair"]["verdict"]
    assert check["text"] == committed["precision_pair"]["text"]


def precision_batch(tmp_path: Path, bf16: list[float], fp32: list[float], **wrong) -> Path:
    """The runs of scripts/run_precision_cpu.sh: one row in bf16 and fp32 for each seed."""
    revs = []
    for seed, b, f in zip(SEEDS, bf16, fp32, strict=True):
        for precision, val in (("bf16", b), ("fp32", f)):
            name = f"network_84_8153-precision-{precision}-seed{seed}"
            revs.append(
                rev(name, params_for("base", seed), val, 70.0, precision=wrong.get(name, precision))
            )
    return write_json(tmp_path / "precision.json", exp_show(revs))


@pytest.mark.parametrize(
    ("bf16", "fp32", "expected"),
    [
        ([62.0, 63.0, 61.5], [62.4, 62.6, 61.0], study.BF16_AGREES),  # mean +0.17, std 0.81
        ([58.0, 59.0, 57.5], [62.4, 62.6, 61.0], study.BF16_DIFFERS),  # mean -3.83
    ],
)
def test_precision_pairs_over_seeds(tmp_path, bf16, fp32, expected):
    check = study.precision_pairs_check(precision_batch(tmp_path, bf16, fp32))
    differences = [b - f for b, f in zip(bf16, fp32, strict=True)]
    half = T_975[2] * np.std(differences, ddof=1) / np.sqrt(3)
    assert check["seeds"] == list(SEEDS)
    assert check["differences_pp"] == pytest.approx(differences)
    assert check["mean_pp"] == pytest.approx(np.mean(differences))
    assert check["ci95_pp"] == pytest.approx(
        [np.mean(differences) - half, np.mean(differences) + half]
    )
    assert check["fp32_seed_std_pp"] == pytest.approx(np.std(fp32, ddof=1))
    assert check["verdict"] == expected
    assert check["notes"] == []


def test_precision_pairs_refuse_an_arm_in_the_wrong_precision(tmp_path):
    path = precision_batch(
        tmp_path, [62.0] * 3, [62.0] * 3, **{"network_84_8153-precision-fp32-seed43": "bf16"}
    )
    with pytest.raises(StudyError, match="precision-fp32-seed43 was trained in bf16"):
        study.precision_pairs_check(path)
    with pytest.raises(StudyError, match="no seed with both"):
        study.precision_pairs_check(write_json(tmp_path / "none.json", exp_show([])))


def pretrained_evaluation(tmp_path: Path) -> Path:
    google = {
        "model": "efficientnet_lite0",
        "pretrained": True,
        "weights_sha256": "ab" * 32,
        "epochs_run": 3,
        "differs_in_settings": "32 px",
        "val_folder": {"accuracy": 0.90, "images": 3925},
        "val_folder_imagenet_val": {"accuracy": 0.88, "images": 134},
        "val_folder_imagenet_train": {"accuracy": 0.97, "images": 366},
        "zero_shot": {
            "val_folder": {"accuracy": 0.70, "images": 3925},
            "val_folder_imagenet_val": {"accuracy": 0.60, "images": 134},
            "val_folder_imagenet_train": {"accuracy": 0.95, "images": 366},
        },
    }
    return write_json(tmp_path / "evaluation.json", {"custom": {}, "googlenet": google})


def test_pretrained_check(tmp_path, batch):
    table = load_table([batch])
    check = study.pretrained_check(pretrained_evaluation(tmp_path), table)
    assert check["verdict"] == SUPPORTED
    assert check["difference_from_base_mean"] == pytest.approx(90.0 - np.mean(VAL["base"]))
    assert "one fine-tuning run" in check["text"]
    leakage = {row["images"]: row for row in check["leakage"]}
    unseen = leakage["ImageNet-val images (never seen in pretraining)"]
    seen = leakage["ImageNet-train images (seen in pretraining)"]
    assert (unseen["fine_tuned"], unseen["zero_shot"], unseen["count"]) == pytest.approx(
        (88.0, 60.0, 134)
    )
    assert (seen["fine_tuned"], seen["zero_shot"]) == pytest.approx((97.0, 95.0))
    assert unseen["custom_base_mean"] == pytest.approx(np.mean(VAL["base"]) + 1)


@pytest.mark.e2e  # a DVC repository with a commit per run
def test_cli_writes_every_file(tmp_path, capsys):
    repo = tmp_path / "repo"
    batch = write_json(tmp_path / "batch1.json", exp_show(study_revs(commit_runs(repo))))
    out = tmp_path / "out"
    status = study.main(
        [
            "--out",
            str(out),
            "--curves-from-cache",
            str(repo),
            "--pretrained",
            str(pretrained_evaluation(tmp_path)),
            "--precision-pair",
            f"{fp32_file(tmp_path, 62.5)}:network_84_8153-glorot",
            str(batch),
        ]
    )
    assert status == 0
    names = {
        "study_runs.csv",
        "study_runs.md",
        "study_summary.csv",
        "study_summary.md",
        "study_conclusions.md",
        "study_conclusions.json",
    }
    assert names <= {p.name for p in out.iterdir()}
    assert not list(out.rglob(".*.tmp"))
    assert len(list((out / "curves").glob("*.tsv"))) == 12
    record = json.loads((out / "study_conclusions.json").read_text())
    verdicts = {t["key"]: t["verdict"] for t in record["tests"]}
    assert verdicts == {
        "C2": SUPPORTED,
        "C3a": SUPPORTED,
        "C3b": CONTRADICTED,
        "C4a": SUPPORTED,
        "C4b": NOT_RESOLVED,
    }
    assert record["pretrained"]["verdict"] == SUPPORTED
    assert record["precision_pair"]["verdict"] == study.BF16_AGREES
    runs = pd.read_csv(out / "study_runs.csv")
    assert len(runs) == 12
    assert set(runs["settings"]) == {"differs: 32 px, init glorot"}
    conclusions = (out / "study_conclusions.md").read_text()
    printed = capsys.readouterr().out
    for text in ("C2. augmentation improves results", "Leakage check", "bf16 vs fp32"):
        assert text in conclusions
        assert text in printed
    assert "nan" not in conclusions  # the custom networks have no ImageNet-train images: n/a

    # a second run without the cache reuses the curves already in OUT/curves
    assert study.main(["--out", str(out), str(batch)]) == 0
    record = json.loads((out / "study_conclusions.json").read_text())
    assert record["tests"][1]["verdict"] == SUPPORTED
    assert record["pretrained"] is None


def test_cli_reports_a_mislabelled_run(tmp_path, capsys):
    revs = [
        rev(
            "network_84_8153-study-no-aug-seed42",
            params_for("no_augmentation", 42, image_augmentation=True),
            1,
            2,
        )
    ]
    path = write_json(tmp_path / "b.json", exp_show(revs))
    assert study.main(["--out", str(tmp_path / "out"), str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: network_84_8153-study-no-aug-seed42")
    assert "image_augmentation is True, expected False" in error
    assert not (tmp_path / "out").exists()


def test_cli_without_curves_says_no_curves(tmp_path, batch):
    out = tmp_path / "out"
    assert study.main(["--out", str(out), str(batch)]) == 0
    record = json.loads((out / "study_conclusions.json").read_text())
    c3a = next(t for t in record["tests"] if t["key"] == "C3a")
    assert c3a["verdict"] == NO_CURVES
    assert c3a["ci95_pp"] == [None, None]
    runs = (out / "study_runs.md").read_text()
    assert "n/a" in runs
    assert "nan" not in runs
    assert not (out / "curves").exists()
