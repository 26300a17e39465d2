#!/usr/bin/env bash
# The report's best row, network_84_8153, on all real images with its full budget (up to
# 30 epochs, the report's protocol, loss patience, final weights) at 32 px on a CPU, twice:
# with R2018b's N(0, 0.01) init and with Glorot. GoogLeNet from random init for 1 epoch
# (no ImageNet weights offline; not compared with the report). Two DVC experiments; the
# comparison (labelled with what differs from the report's settings) in results/$OUT.
#   bash scripts/run_best_row_cpu.sh [ARCHIVE [MD5]]   (OUT=cpu-32px-val-folder)
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1 PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/src # this copy's package, whatever an editable install points at
out=results/${OUT:-cpu-32px-val-folder}
# The profile cpu-32px of experiments.yaml, with R2018b's init (the -S glorot run below adds
# it back); queued runs need an absolute archive path.
mapfile -t common < <(python -m imagenette_repro.experiments cpu-32px --absolute \
  --set train.init=normal_0.01 ${1:+--archive "$1"} ${2:+--md5 "$2"})
((${#common[@]})) || exit 2 # the catalogue said why
start=$SECONDS
python -m imagenette_repro.experiments.queue_rows queue network_84_8153 "${common[@]}" --name-suffix r2018b-init
python -m imagenette_repro.experiments.queue_rows queue network_84_8153 "${common[@]}" -S train.init=glorot \
  --name-suffix glorot --run -j 1
echo "queue: $((SECONDS - start)) s on $(nproc) CPU cores"
mkdir -p "$out"
dvc exp show --json >"$out/exp_show.json"
python -m imagenette_repro.report.comparison --input "$out/exp_show.json" --out "$out"
