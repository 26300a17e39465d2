#!/usr/bin/env bash
# One DVC experiment, run in this working tree (not queued, so that its checkpoint stays in
# data/checkpoints/: the same command after an interruption resumes from the last finished
# epoch), and its record in OUT/NAME/: the command, machine, commit, wall time, evaluation,
# per-epoch curves and `dvc exp show --json` of the experiment.
#   bash scripts/recorded_exp_run.sh OUT NAME "SCRIPT LINE" [dvc exp run -S overrides ...]
# SCRIPT LINE is the command a reader re-runs (the wrapper's), kept in run.json.
# exp_show.json: `dvc exp show --json` after the run, cut to the workspace and the baseline
# commit with only experiment NAME under its `experiments`: the experiment's own entry, its
# rev and name with its params and metrics (records made before this keep
# `dvc exp show --json --rev NAME`: the experiment's commit as a nameless entry).
# The experiment itself (its commit, lock and outputs) lives in refs/exps of the clone that
# ran it, not on any branch. To share it, from that clone:
#   dvc exp push origin NAME    # its commit to the project's git remote, outputs to the DVC remote
# then anywhere: `dvc exp pull origin NAME`, and `dvc exp show` / `dvc exp apply NAME` /
# dvc.api.params_show(rev=NAME), metrics_show(rev=NAME), read(PATH, rev=NAME) by its name.
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1 PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/src # this copy's package, whatever an editable install points at
usage='usage: recorded_exp_run.sh OUT NAME "SCRIPT LINE" [-S key=value ...]'
out=${1:?$usage}/${2:?$usage}
name=$2
script=${3:?$usage}
shift 3
commit=$(git rev-parse HEAD)
if [[ -n $(git status --porcelain --untracked-files=no -- src stages dvc.yaml) ]]; then
  echo "error: src/, stages/ or dvc.yaml differ from $commit; a recorded run runs committed code" >&2
  exit 2
fi
# The run's params are the commit's plus the overrides given here: a workspace run leaves
# its params.yaml behind (DVC stages it too), whose overrides would otherwise carry into
# the next run. Restored from the commit itself, not from the index.
if [[ -n $(git status --porcelain --untracked-files=no -- params.yaml) ]]; then
  echo "params.yaml: the commit's restored (the previous run's is kept in its experiment)" >&2
  git checkout -q HEAD -- params.yaml
fi
command=(dvc exp run -n "$name" "$@")
start=$(date +%s)
"${command[@]}"
seconds=$(($(date +%s) - start))
mkdir -p "$out"
python -m imagenette_repro.machine >"$out/machine.json"
# The experiment's own entry under its baseline (experiments.runs --keep); should DVC not
# list it by its name, the whole `dvc exp show --json` is kept rather than nothing.
if ! python -m imagenette_repro.experiments.runs --keep "$name" >"$out/exp_show.json"; then
  echo "warning: $name not found in dvc exp show; its whole output kept" >&2
  dvc exp show --json >"$out/exp_show.json"
fi
cp metrics/evaluation.json "$out/evaluation.json"
rm -rf "$out/train_custom" && cp -r metrics/train_custom "$out/train_custom" # dvclive curves
python - "$out/run.json" "$name" "$commit" "$seconds" "$script" "${command[*]}" <<'PY'
import json, sys
from imagenette_repro.stage_io import write_json
path, name, commit, seconds, script, command = sys.argv[1:]
write_json(path, {"experiment": name, "commit": commit, "wall_seconds": int(seconds),
                  "command": command, "script": script})  # written last: the run is done
PY
echo "$name: $seconds s; record in $out"
