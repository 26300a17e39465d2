#!/usr/bin/env bash
# The from-scratch recipe at 128 px (params.yaml recipes.imagenette_128) under the report's
# protocol (train folder -> val folder) with the Imagenette leaderboard's rules (random init,
# no pretrained weights, no test-time augmentation), on all real images, as one recorded
# DVC experiment (scripts/recorded_exp_run.sh). GoogLeNet from random init for 1 epoch
# (evaluate needs a second model; not part of the result).
#   bash scripts/run_recipe_cpu.sh [EPOCHS [ARCHIVE [MD5]]] [-S key=value ...]
#   (SEED=42, RECIPE=imagenette_128, NAME=<derived>, OUT=results/cpu-128px-recipe)
# Further -S overrides make a variant (a measured comparison); give it a NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=5
[[ $# -gt 0 && $1 != -S ]] && { epochs=$1; shift; }
archive=../shared/data/imagenette2-224.tgz
[[ $# -gt 0 && $1 != -S ]] && { archive=$1; shift; }
md5=003aed9aab56a5804f410d9443dba23b
[[ $# -gt 0 && $1 != -S ]] && { md5=$1; shift; }
archive=$(realpath "$archive")
seed=${SEED:-42}
recipe=${RECIPE:-imagenette_128}
name=${NAME:-$(printf '%s-%02dep-seed%s' "$recipe" "$epochs" "$seed")}
exec bash scripts/recorded_exp_run.sh "${OUT:-results/cpu-128px-recipe}" "$name" \
  "SEED=$seed NAME=$name bash scripts/run_recipe_cpu.sh $epochs${*:+ $*}" \
  -S "data.archive=$archive" -S "data.md5=$md5" -S data.input_size=128 \
  -S "network=$recipe" -S "train.max_epochs=$epochs" -S train.keep=final -S "seed=$seed" \
  -S googlenet.weights=none -S googlenet.max_epochs=1 "$@"
