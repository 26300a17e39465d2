"""A recorded run's exp_show.json (scripts/recorded_exp_run.sh) keeps the experiment's own
entry, as `dvc exp show --json` lists it under its baseline; every reader takes that entry
from the new records and the experiment's commit from the earlier ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagenette_repro.experiments import runs
from imagenette_repro.report import study

from .conftest import ROOT

# An earlier record: `dvc exp show --json --rev NAME`, the experiment's commit as a nameless
# commit entry beside the workspace.
EARLIER = ROOT / "results" / "cpu-128px-recipe" / "imagenette_128-05ep-seed42"
SCRIPT = ROOT / "scripts" / "recorded_exp_run.sh"
STAGE = """\
import json
import os
import yaml
params = yaml.safe_load(open("params.yaml"))
accuracy = params["a"] / 10
evaluation = {"custom": {"val_folder": {"accuracy": accuracy}, "epochs_run": params["a"]}}
os.makedirs("metrics", exist_ok=True)
json.dump(evaluation, open("metrics/evaluation.json", "w"))
"""


def entry(rev: str, name: str | None, accuracy: float, **params) -> dict:
    """One entry of `dvc exp show --json` with params.yaml and metrics/evaluation.json."""
    data = {
        "rev": rev,
        "timestamp": None,
        "params": {"params.yaml": {"data": {"seed": 42, **params}}},
        "metrics": {runs.EVALUATION: {"data": {"custom": {"val_folder": {"accuracy": accuracy}}}}},
    }
    return {"rev": rev, "name": name, "data": data, "error": None, "experiments": None}


def new_record(name: str = "run-a") -> list[dict]:
    """The new shape: the workspace (the experiment applied), the baseline commit with its
    own committed metrics, and the experiment under the baseline's `experiments`."""
    baseline = entry("b" * 40, "main", 0.30, network="base")
    baseline["experiments"] = [
        {"revs": [entry("e" * 40, name, 0.80, network="run")], "executor": None, "name": name}
    ]
    return [entry("workspace", None, 0.80, network="run"), baseline]


def test_the_experiment_entry_is_chosen_over_the_baseline_commit_and_the_workspace():
    run = runs.recorded_run(runs.read_runs(new_record()), "run-a", "b" * 40)
    assert (run.kind, run.name, run.rev) == ("experiment", "run-a", "e" * 40)
    assert run.params["network"] == "run"
    assert runs.recorded_run(runs.read_runs(new_record()), "other", "b" * 40).kind == "workspace"


def test_an_earlier_record_gives_the_experiment_commit_not_the_baseline():
    made = json.loads((EARLIER / "run.json").read_text())
    shown = runs.read_runs(runs.exp_show_json(EARLIER / "exp_show.json"))
    run = runs.recorded_run(shown, made["experiment"], made["commit"])
    assert run.kind == "commit" and run.rev != made["commit"]
    assert run.rev == shown[1].rev
    # the fallback of the earlier script: plain `dvc exp show`, HEAD being the baseline
    head = entry(made["commit"], "main", 0.30)
    fallback = [entry("workspace", None, 0.80), head]
    assert runs.recorded_run(runs.read_runs(fallback), made["experiment"], made["commit"]).kind == (
        "workspace"
    )


def test_keep_experiment_keeps_only_the_named_one_and_names_a_missing_one():
    shown = new_record()
    other = entry("f" * 40, "run-b", 0.5)
    shown[1]["experiments"].append({"revs": [other], "executor": None, "name": "run-b"})
    kept = runs.keep_experiment(shown, "run-a")
    assert [c["rev"] for c in kept] == ["workspace", "b" * 40]
    assert [e["name"] for e in kept[1]["experiments"]] == ["run-a"]
    with pytest.raises(runs.UserError, match="no experiment named run-c"):
        runs.keep_experiment(shown, "run-c")


def test_the_study_reader_takes_both_shapes(tmp_path):
    new = tmp_path / "new.json"
    new.write_text(json.dumps(new_record()))
    assert list(study.read_exp_show([new])) == ["run-a"]
    # the earlier shape holds no experiment entry: nothing for the study, and no error
    assert study.read_exp_show([EARLIER / "exp_show.json"]) == {}


def dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_STUDIO_OFFLINE": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.e2e  # real `dvc exp run -n` in a scratch DVC repository
def test_the_script_keeps_the_named_experiment_of_a_real_dvc_exp_run(tmp_path):
    # the line recorded_exp_run.sh runs after `dvc exp run -n "$name"`
    keep = 'python -m imagenette_repro.experiments.runs --keep "$name" >"$out/exp_show.json"'
    assert keep in SCRIPT.read_text()
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "test")
    dvc(repo, "init", "-q")
    (repo / "params.yaml").write_text("a: 1\n")
    (repo / "stage.py").write_text(STAGE)
    stage = {
        "cmd": f'"{sys.executable}" stage.py',
        "deps": ["stage.py"],
        "params": ["a"],
        "metrics": [{runs.EVALUATION: {"cache": False}}],
    }
    (repo / "dvc.yaml").write_text(json.dumps({"stages": {"evaluate": stage}}))
    dvc(repo, "repro", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    baseline = git(repo, "rev-parse", "HEAD")
    dvc(repo, "exp", "run", "-q", "-n", "run-a", "-S", "a=2")
    dvc(repo, "exp", "run", "-q", "-n", "run-b", "-S", "a=3")  # the newer one, listed first

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "imagenette_repro.experiments.runs", "--keep", "run-a"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    kept = json.loads(done.stdout)
    assert [c["rev"] for c in kept] == ["workspace", baseline]
    (experiment,) = kept[1]["experiments"]
    (own,) = experiment["revs"]
    assert experiment["name"] == own["name"] == "run-a"
    assert own["rev"] != baseline and own["data"]["params"]["params.yaml"]["data"] == {"a": 2}
    assert own["data"]["metrics"][runs.EVALUATION]["data"]["custom"]["epochs_run"] == 2
    # what the readers take: the experiment, not the workspace (run-b applied) nor the baseline
    read = runs.read_runs(kept)
    assert [r.params["a"] for r in read] == [3, 1, 2]
    chosen = runs.recorded_run(read, "run-a", baseline)
    assert (chosen.kind, chosen.name, chosen.rev) == ("experiment", "run-a", own["rev"])
    assert runs.get_dotted(chosen.metrics[runs.EVALUATION], "custom.val_folder.accuracy") == 0.2
