#!/usr/bin/env bash
# Run the whole pipeline on the embedded sample of real Imagenette images
# (sample/imagenette2-sample.tgz: 200 train + 60 val images), at CPU-friendly settings
# (the profile `sample` of experiments.yaml).
# `dvc exp run -S` writes these settings into params.yaml and records the run as a DVC
# experiment; `git checkout params.yaml` brings back the report's settings. Glorot init:
# R2018b's N(0, 0.01) hardly learns at 32 px (README, Results); the metrics say so.
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1
export PYTHONPATH=$PWD/src # this copy's package, whatever an editable install points at
mapfile -t sample < <(python -m imagenette_repro.experiments sample) # experiments.yaml
dvc exp run "$@" "${sample[@]}"
