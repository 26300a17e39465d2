#!/usr/bin/env bash
# bf16 autocast against fp32, paired by seed: the report's best row (network_84_8153) under
# the report's protocol with the 32-px CPU profile (Glorot init, up to 30 epochs, loss
# patience, last weights), once with runtime.precision=bf16 and once with fp32 for each seed
# of SEEDS, all from one commit on one machine, one experiment after another in this working
# tree. Then the study's judge compares them (study_conclusions.md, "bf16 vs fp32").
# Finished experiments with the same params are not run again and the one cut short
# resumes from its last finished epoch, so the same command after an interruption goes on.
#   SEEDS="42 43 44" bash scripts/run_precision_cpu.sh [ARCHIVE [MD5]]   (OUT=cpu-32px-precision)
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1 PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/src # this copy's package, whatever an editable install points at
out=results/${OUT:-cpu-32px-precision}
read -r -a seeds <<<"${SEEDS:-42 43 44}"
# The profile cpu-32px of experiments.yaml; queued runs need an absolute archive path.
mapfile -t common < <(python -m imagenette_repro.experiments cpu-32px --absolute \
  ${1:+--archive "$1"} ${2:+--md5 "$2"})
((${#common[@]})) || exit 2 # the catalogue said why
start=$SECONDS
for seed in "${seeds[@]}"; do # pair by pair: a batch cut short still holds whole pairs
  for precision in bf16 fp32; do
    python -m imagenette_repro.experiments.queue_rows queue network_84_8153 "${common[@]}" \
      -S "runtime.precision=$precision" --seeds "$seed" --name-suffix "precision-$precision" \
      --in-workspace
  done
done
echo "runs: $((SECONDS - start)) s on $(nproc) CPU cores"
mkdir -p "$out"
dvc exp show --json >"$out/exp_show.json"
python -m imagenette_repro.machine >"$out/machine.json"
# The study's files again, with the pairs in place of the single seed-42 pair.
python -m imagenette_repro.report.study --out results/cpu-32px-conclusions \
  --pretrained results/cpu-224px-standin/evaluation.json --precision-pairs "$out/exp_show.json" \
  results/cpu-32px-conclusions/exp_show_batch1.json
