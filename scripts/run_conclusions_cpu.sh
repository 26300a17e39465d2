#!/usr/bin/env bash
# The report's conclusions 2-4 re-tested at convergence: on all real images at
# 32 px, each run with the full budget (up to 30 epochs, the report's protocol, loss
# patience, final weights), Glorot init (R2018b's N(0, 0.01) does not learn at 32 px:
# results/cpu-32px-val-folder), bf16 autocast, for each seed of SEEDS:
#   network_84_8153-study            the report's best row
#   network_84_8153-study-no-aug     the same without augmentation      (conclusion 2)
#   network_82_828-study             the report's ADAM row, same layers (conclusion 3)
#   network_84_8153-study-no-dropout the same without its Dropout layer (conclusion 4)
# Queued seed by seed (a batch cut short still holds whole seeds), JOBS experiments at a
# time with one thread each. GoogLeNet: 1 epoch from random init (needed by evaluate; not
# part of the study). The record of the batch: results/$OUT/exp_show_<BATCH>.json.
#   SEEDS="42 43 44" JOBS=2 BATCH=batch1 bash scripts/run_conclusions_cpu.sh [ARCHIVE [MD5]]
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1 PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/src # this copy's package, whatever an editable install points at
out=results/${OUT:-cpu-32px-conclusions}
jobs=${JOBS:-2}
# The profile cpu-32px of experiments.yaml; queued runs need an absolute archive path.
mapfile -t common < <(python -m imagenette_repro.experiments cpu-32px --absolute \
  --set "runtime.num_threads=$((jobs > 1 ? 1 : 0))" ${1:+--archive "$1"} ${2:+--md5 "$2"})
((${#common[@]})) || exit 2 # the catalogue said why
mapfile -t no_aug < <(python -m imagenette_repro.experiments study-no-aug)
mapfile -t no_dropout < <(python -m imagenette_repro.experiments study-no-dropout)
start=$SECONDS
for seed in ${SEEDS:-42 43 44}; do
  python -m imagenette_repro.experiments.queue_rows queue network_84_8153 "${common[@]}" --seeds "$seed" \
    --name-suffix study
  python -m imagenette_repro.experiments.queue_rows queue network_84_8153 "${common[@]}" --seeds "$seed" \
    "${no_aug[@]}" --name-suffix study-no-aug
  python -m imagenette_repro.experiments.queue_rows queue network_82_828 "${common[@]}" --seeds "$seed" \
    --name-suffix study
  python -m imagenette_repro.experiments.queue_rows queue network_84_8153 "${common[@]}" --seeds "$seed" \
    "${no_dropout[@]}" --name-suffix study-no-dropout
done
dvc queue start -j "$jobs"
# (not `| grep -q`: grep's early exit fails dvc with SIGPIPE under pipefail)
while grep -qE ' (Queued|Running) *$' <<<"$(dvc queue status)"; do sleep 60; done
dvc queue status
echo "queue: $((SECONDS - start)) s on $(nproc) CPU cores"
mkdir -p "$out"
dvc exp show --json >"$out/exp_show_${BATCH:-batch1}.json"
# The tables and verdicts from every batch kept in $out; the curves from DVC's cache here;
# conclusion 1 and the bf16 check when their results folders are there (the paired seeds of
# scripts/run_precision_cpu.sh where they exist, else the single seed-42 fp32 run).
extra=()
[ -f results/cpu-224px-standin/evaluation.json ] &&
  extra+=(--pretrained results/cpu-224px-standin/evaluation.json)
if [ -f results/cpu-32px-precision/exp_show.json ]; then
  extra+=(--precision-pairs results/cpu-32px-precision/exp_show.json)
elif [ -f results/cpu-32px-val-folder/exp_show.json ]; then
  extra+=(--precision-pair results/cpu-32px-val-folder/exp_show.json:network_84_8153-glorot)
fi
python -m imagenette_repro.report.study --out "$out" --curves-from-cache . "${extra[@]}" \
  "$out"/exp_show_*.json
