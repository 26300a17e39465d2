#!/usr/bin/env bash
# Run the whole pipeline on the embedded sample of real Imagenette images
# (sample/imagenette2-sample.tgz: 200 train + 60 val images), at CPU-friendly settings.
# `dvc exp run -S` writes these settings into params.yaml and records the run as a DVC
# experiment; `git checkout params.yaml` brings back the report's settings. Glorot init:
# R2018b's N(0, 0.01) hardly learns at 32 px (README, Results); the metrics say so.
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1
md5=$(cut -d' ' -f1 sample/imagenette2-sample.md5)
dvc exp run "$@" \
  -S data.archive=sample/imagenette2-sample.tgz \
  -S "data.md5=$md5" \
  -S data.input_size=32 \
  -S train.scaled_input=true \
  -S train.init=glorot \
  -S train.batch_size=10 \
  -S train.max_epochs=12 \
  -S googlenet.weights=none \
  -S googlenet.batch_size=10 \
  -S googlenet.max_epochs=2
