#!/usr/bin/env bash
# The from-scratch recipe at 128 px (params.yaml recipes.imagenette_128) under the report's
# protocol (train folder -> val folder) with the Imagenette leaderboard's rules (random init,
# no pretrained weights, no test-time augmentation), on all real images: the profile
# `recipe-128px` of experiments.yaml, as one recorded DVC experiment
# (scripts/recorded_exp_run.sh; an interrupted run resumes with the same command).
#   bash scripts/run_recipe_cpu.sh [EPOCHS [ARCHIVE [MD5]]] [-S key=value ...]
#   (EPOCHS=5, SEED=42, PROFILE=recipe-128px, RECIPE=<the profile's network>, NAME=<derived>,
#    OUT=results/cpu-128px-recipe)
# PROFILE names another profile of experiments.yaml built on recipe-128px (the ablate-*
# steps towards fastai's recipe); further -S overrides make a variant (a measured
# comparison); give it a NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=5
[[ $# -gt 0 && $1 != -S ]] && { epochs=$1; shift; }
seed=${SEED:-42}
profile=${PROFILE:-recipe-128px}
sets=(--set "train.max_epochs=$epochs" --set "seed=$seed")
[[ -n ${RECIPE:-} ]] && sets+=(--set "network=$RECIPE")
label=${RECIPE:-imagenette_128}
[[ $profile != recipe-128px && -z ${RECIPE:-} ]] && label=$profile
[[ $# -gt 0 && $1 != -S ]] && { sets+=(--archive "$1"); shift; }
[[ $# -gt 0 && $1 != -S ]] && { sets+=(--md5 "$1"); shift; }
name=${NAME:-$(printf '%s-%02dep-seed%s' "$label" "$epochs" "$seed")}
mapfile -t recipe_args < <(PYTHONPATH=src python -m imagenette_repro.experiments "$profile" --absolute "${sets[@]}")
((${#recipe_args[@]})) || exit 2 # the catalogue said why
exec bash scripts/recorded_exp_run.sh "${OUT:-results/cpu-128px-recipe}" "$name" \
  "SEED=$seed${PROFILE:+ PROFILE=$PROFILE} NAME=$name bash scripts/run_recipe_cpu.sh $epochs${*:+ $*}" "${recipe_args[@]}" "$@"
