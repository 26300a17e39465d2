#!/usr/bin/env bash
# The report's whole table (15 rows) on the real data, scaled down to fit a 2-core CPU:
# 32 px, at most EPOCHS epochs per row (default 4), GoogLeNet from random init for 1 epoch
# (no ImageNet weights offline), Glorot init (R2018b's N(0, 0.01) hardly learns at 32 px).
# This is a scaled-down run, not the report's settings; the comparison labels every row so.
#   bash scripts/run_table_cpu.sh [ARCHIVE] [MD5]
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1
export PYTHONPATH=$PWD/src # this copy's package, whatever an editable install points at
epochs=${EPOCHS:-4}
# The profile cpu-32px of experiments.yaml; queued runs need an absolute archive path.
mapfile -t common < <(python -m imagenette_repro.experiments cpu-32px --absolute \
  --set "train.max_epochs=$epochs" ${1:+--archive "$1"} ${2:+--md5 "$2"})
((${#common[@]})) || exit 2 # the catalogue said why
start=$SECONDS
python -m imagenette_repro.experiments.queue_rows queue --run -j 1 "${common[@]}"
python -m imagenette_repro.report.comparison --out "results/cpu-32px-${epochs}ep"
echo "table: $((SECONDS - start)) s on $(nproc) CPU cores"
