#!/usr/bin/env bash
# One rung of the resolution ladder: the report's best row (network_84_8153) under the
# report's protocol and settings (train folder -> val folder, its SGDM row, loss patience 4,
# last-epoch weights, up to 30 epochs, batch 128) on all real images, trained at input side
# SIDE with init INIT (glorot | normal_0.01, R2018b's); GoogLeNet from random init for 1
# epoch (evaluate needs a second model; not compared with the report): the profile `ladder`
# of experiments.yaml. One recorded DVC experiment (scripts/recorded_exp_run.sh): the same
# command after an interruption resumes from the last finished epoch.
#   bash scripts/run_ladder_cpu.sh SIDE INIT [ARCHIVE [MD5]]   (SEED=42, OUT=results/cpu-ladder)
# ARCHIVE: another archive of the same layout than the profile's (MD5: its md5).
set -euo pipefail
cd "$(dirname "$0")/.."
side=${1:?usage: run_ladder_cpu.sh SIDE INIT [ARCHIVE [MD5]]}
init=${2:?usage: run_ladder_cpu.sh SIDE INIT [ARCHIVE [MD5]]}
seed=${SEED:-42}
name=$(printf 'ladder-%03dpx-%s-seed%s' "$side" "$init" "$seed")
mapfile -t ladder < <(PYTHONPATH=src python -m imagenette_repro.experiments ladder --absolute \
  --set "data.input_size=$side" --set "train.init=$init" --set "seed=$seed" \
  ${3:+--archive "$3"} ${4:+--md5 "$4"})
((${#ladder[@]})) || exit 2 # the catalogue said why
exec bash scripts/recorded_exp_run.sh "${OUT:-results/cpu-ladder}" "$name" \
  "bash scripts/run_ladder_cpu.sh $side $init  (SEED=$seed)" "${ladder[@]}"
