#!/usr/bin/env bash
# One rung of the resolution ladder: the report's best row (network_84_8153) under the
# report's protocol and settings (train folder -> val folder, its SGDM row, loss patience 4,
# last-epoch weights, up to 30 epochs, batch 128) on all real images, trained at input side
# SIDE with init INIT (glorot | normal_0.01, R2018b's). GoogLeNet from random init for 1 epoch
# (evaluate needs a second model; not compared with the report). One DVC experiment, run in
# this working tree (not queued) so that its checkpoint stays in data/checkpoints/: the same
# command after an interruption resumes from the last finished epoch.
#   bash scripts/run_ladder_cpu.sh SIDE INIT [ARCHIVE [MD5]]   (SEED=42, OUT=results/cpu-ladder)
# The record goes to $OUT/<experiment>/: the command, machine, commit, wall time, evaluation,
# per-epoch curve and `dvc exp show --json` of the experiment.
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1 PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/src # this copy's package, whatever an editable install points at
side=${1:?usage: run_ladder_cpu.sh SIDE INIT [ARCHIVE [MD5]]}
init=${2:?usage: run_ladder_cpu.sh SIDE INIT [ARCHIVE [MD5]]}
archive=$(realpath "${3:-../shared/data/imagenette2-224.tgz}")
md5=${4:-003aed9aab56a5804f410d9443dba23b}
seed=${SEED:-42}
name=$(printf 'ladder-%03dpx-%s-seed%s' "$side" "$init" "$seed")
out=${OUT:-results/cpu-ladder}/$name
commit=$(git rev-parse HEAD)
if [[ -n $(git status --porcelain --untracked-files=no -- src stages dvc.yaml) ]]; then
  echo "error: src/, stages/ or dvc.yaml differ from $commit; a ladder run records committed code" >&2
  exit 2
fi
command=(dvc exp run -n "$name" -S "data.archive=$archive" -S "data.md5=$md5"
  -S "data.input_size=$side" -S train.scaled_input=true -S "train.init=$init" -S "seed=$seed"
  -S googlenet.weights=none -S googlenet.max_epochs=1)
start=$(date +%s)
"${command[@]}"
seconds=$(($(date +%s) - start))
mkdir -p "$out"
python -m imagenette_repro.machine >"$out/machine.json"
dvc exp show --json --rev "$name" >"$out/exp_show.json" 2>/dev/null ||
  dvc exp show --json >"$out/exp_show.json"
cp metrics/evaluation.json "$out/evaluation.json"
rm -rf "$out/train_custom" && cp -r metrics/train_custom "$out/train_custom"  # dvclive curves
python - "$out/run.json" "$name" "$commit" "$seconds" "$side" "$init" "$seed" "${command[*]}" <<'EOF'
import json, sys
path, name, commit, seconds, side, init, seed, command = sys.argv[1:]
json.dump({"experiment": name, "commit": commit, "wall_seconds": int(seconds),
           "input_side": int(side), "init": init, "seed": int(seed), "command": command,
           "script": f"bash scripts/run_ladder_cpu.sh {side} {init}  (SEED={seed})"},
          open(path, "w"), indent=2)
EOF
echo "$name: $seconds s; record in $out"
