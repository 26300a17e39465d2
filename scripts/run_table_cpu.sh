#!/usr/bin/env bash
# The report's whole table (15 rows) on the real data, scaled down to fit a 2-core CPU:
# input side SIDE (default 32), at most EPOCHS epochs per row (default 4; 30 is the
# report's budget, each row then stopped by its own patience), GoogLeNet from random init
# for 1 epoch (no ImageNet weights offline), Glorot init (R2018b's N(0, 0.01) hardly learns
# at 32 px). This is a scaled-down run, not the report's settings; the comparison labels
# every row so. The rows run one after another in this working tree (not in DVC's queue):
# rows already finished with the same params are not run again, and the row an
# interruption cut short resumes from its last finished epoch, so the same command goes on.
# ROWS (row names, space-separated) runs only those rows, e.g. the rest of a table whose
# first rows were recorded in another working tree; its exp_show.json then holds only them.
# PRECISION (fp32, bf16) fixes runtime.precision instead of "auto": a row checkpointed on one
# CPU then resumes on a CPU whose "auto" would pick the other precision.
#   [SIDE=64] [EPOCHS=30] [SEED=42] [ROWS="..."] [PRECISION=fp32] \
#     bash scripts/run_table_cpu.sh [ARCHIVE] [MD5]
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1
export PYTHONPATH=$PWD/src # this copy's package, whatever an editable install points at
side=${SIDE:-32}
epochs=${EPOCHS:-4}
seed=${SEED:-42}
# The profile cpu-32px of experiments.yaml at SIDE; queued runs need an absolute archive path.
mapfile -t common < <(python -m imagenette_repro.experiments cpu-32px --absolute \
  --set "data.input_size=$side" --set "train.max_epochs=$epochs" --set "seed=$seed" \
  ${PRECISION:+--set "runtime.precision=$PRECISION"} ${1:+--archive "$1"} ${2:+--md5 "$2"})
((${#common[@]})) || exit 2 # the catalogue said why
start=$SECONDS
python -m imagenette_repro.experiments.queue_rows queue --in-workspace "${common[@]}" \
  --name-suffix "${side}px-${epochs}ep-seed$seed" ${ROWS:-}
out="results/cpu-${side}px-${epochs}ep"
mkdir -p "$out"
dvc exp show --json >"$out/exp_show.json"
python -m imagenette_repro.machine >"$out/machine.json"
python -m imagenette_repro.report.comparison --input "$out/exp_show.json" --out "$out"
echo "table: $((SECONDS - start)) s on $(nproc) CPU cores"
