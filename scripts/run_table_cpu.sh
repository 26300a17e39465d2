#!/usr/bin/env bash
# The report's whole table (15 rows) on the real data, scaled down to fit a 2-core CPU:
# 32 px, at most EPOCHS epochs per row (default 4), GoogLeNet from random init for 1 epoch
# (no ImageNet weights offline), Glorot init (R2018b's N(0, 0.01) hardly learns at 32 px).
# This is a scaled-down run, not the report's settings; the comparison labels every row so.
#   bash scripts/run_table_cpu.sh [ARCHIVE] [MD5]
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1
archive=$(realpath "${1:-../shared/data/imagenette2-224.tgz}")  # queued runs need absolute paths
md5=${2:-003aed9aab56a5804f410d9443dba23b}
epochs=${EPOCHS:-4}
start=$SECONDS
python -m imagenette_repro.queue_rows queue --run -j 1 \
  -S "data.archive=$archive" -S "data.md5=$md5" -S data.input_size=32 -S train.scaled_input=true -S train.init=glorot \
  -S "train.max_epochs=$epochs" -S googlenet.weights=none -S googlenet.max_epochs=1
python -m imagenette_repro.comparison --out "results/cpu-32px-${epochs}ep"
echo "table: $((SECONDS - start)) s on $(nproc) CPU cores"
