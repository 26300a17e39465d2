#!/usr/bin/env bash
# One rung of the resolution ladder: the report's best row (network_84_8153) under the
# report's protocol and settings (train folder -> val folder, its SGDM row, loss patience 4,
# last-epoch weights, up to 30 epochs, batch 128) on all real images, trained at input side
# SIDE with init INIT (glorot | normal_0.01, R2018b's). GoogLeNet from random init for 1 epoch
# (evaluate needs a second model; not compared with the report). One recorded DVC
# experiment (scripts/recorded_exp_run.sh): the same command after an interruption resumes
# from the last finished epoch.
#   bash scripts/run_ladder_cpu.sh SIDE INIT [ARCHIVE [MD5]]   (SEED=42, OUT=results/cpu-ladder)
set -euo pipefail
cd "$(dirname "$0")/.."
side=${1:?usage: run_ladder_cpu.sh SIDE INIT [ARCHIVE [MD5]]}
init=${2:?usage: run_ladder_cpu.sh SIDE INIT [ARCHIVE [MD5]]}
archive=$(realpath "${3:-../shared/data/imagenette2-224.tgz}")
md5=${4:-003aed9aab56a5804f410d9443dba23b}
seed=${SEED:-42}
name=$(printf 'ladder-%03dpx-%s-seed%s' "$side" "$init" "$seed")
exec bash scripts/recorded_exp_run.sh "${OUT:-results/cpu-ladder}" "$name" \
  "bash scripts/run_ladder_cpu.sh $side $init  (SEED=$seed)" \
  -S "data.archive=$archive" -S "data.md5=$md5" -S "data.input_size=$side" \
  -S train.scaled_input=true -S "train.init=$init" -S "seed=$seed" \
  -S googlenet.weights=none -S googlenet.max_epochs=1
