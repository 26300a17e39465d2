"""Each experiment runs the code its lock records, and train_custom depends only on what it
reads: real DVC (queue, exp apply, status) in a scratch git repository."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from imagenette_repro.stage_io import file_hash

from .conftest import ROOT, run, use_tiny_settings

EDITED = "src/imagenette_repro/errors.py"  # imported by every stage


def lock_md5(lock_text: str, stage: str, path: str) -> str:
    deps = yaml.safe_load(lock_text)["stages"][stage]["deps"]
    return next(dep["md5"] for dep in deps if dep["path"] == path)


def test_a_queued_experiment_runs_the_code_its_lock_records(project, sample_url):
    # The scratch environment puts the workspace's src/ on PYTHONPATH, as an editable
    # install would: without the stages' own PYTHONPATH=src, a queued run would import it.
    repo, env = project
    use_tiny_settings(repo, sample_url)
    run(["git", "commit", "-qam", "tiny settings"], repo, env)
    run(["dvc", "exp", "run", "--queue", "-n", "queued", "-S", "optimizer=adam"], repo, env)
    committed = file_hash(repo / EDITED, "md5")
    # After queueing, the workspace's code changes: any run importing it stops.
    with open(repo / EDITED, "a") as file:
        file.write('\nraise SystemExit("the workspace code ran")\n')
    edited = file_hash(repo / EDITED, "md5")

    run(["dvc", "queue", "start", "-j", "1"], repo, env)
    logs = run(["dvc", "queue", "logs", "--follow", "queued"], repo, env)
    assert "the workspace code ran" not in logs
    status = run(["dvc", "queue", "status"], repo, env)
    assert "Success" in status, status

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env, stdout_only=True))
    [rev] = [
        rev["rev"]
        for commit in shown
        for experiment in commit.get("experiments") or []
        for rev in experiment["revs"]
        if rev.get("name") == "queued"
    ]
    lock = run(["git", "show", f"{rev}:dvc.lock"], repo, env, stdout_only=True)
    for stage in ("download", "train_custom", "evaluate"):
        assert lock_md5(lock, stage, EDITED) == committed != edited

    run(["git", "checkout", "--", EDITED], repo, env)
    # The short view of the experiments shows the finished run in 80 columns.
    table = run([sys.executable, "-m", "imagenette_repro.runs"], repo, env, stdout_only=True)
    assert max(map(len, table.splitlines())) <= 80
    line = next(line for line in table.splitlines() if line.startswith("queued "))
    assert line.split()[2] == "adam" and float(line.split()[-2]) >= 0

    # The experiment in the workspace; then another row's published accuracy changes:
    # evaluate must run again, train_custom must not.
    run(["dvc", "exp", "apply", "queued"], repo, env)
    assert json.loads(run(["dvc", "status", "--json"], repo, env, stdout_only=True)) == {}
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["report_rows"]["network_64_0764"]["accuracy"] = 0.5
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = json.loads(run(["dvc", "status", "--json"], repo, env, stdout_only=True))
    assert set(changed) == {"evaluate"}, changed


def test_a_stage_run_with_another_copys_package_stops(project, tmp_path):
    # The stage script of the scratch copy, with this checkout's package first on the path.
    repo, env = project
    done = subprocess.run(
        [sys.executable, str(repo / "stages" / "split.py")],
        cwd=repo,
        env={**env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "not from its own copy" in done.stderr and "PYTHONPATH=src" in done.stderr
