#!/usr/bin/env bash
# The report's whole table at its own settings on one GPU: every row at its input size
# (224 or 256 px), up to 30 epochs, batch 128, and GoogLeNet fine-tuned from torchvision's
# ImageNet weights. Needs the archive and the weights, or network access to fetch them:
#   bash scripts/run_table_gpu.sh [ARCHIVE [MD5 [GOOGLENET_WEIGHTS]]]
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1
overrides=()
[ -n "${1:-}" ] && overrides+=(-S "data.archive=$(realpath "$1")")
[ -n "${2:-}" ] && overrides+=(-S "data.md5=$2")
[ -n "${3:-}" ] && overrides+=(-S "googlenet.weights=$(realpath "$3")")
nvidia-smi --query-gpu=name,memory.total --format=csv || echo "warning: no nvidia-smi"
start=$SECONDS
python -m imagenette_repro.experiments.queue_rows queue --run -j 1 "${overrides[@]}"
python -m imagenette_repro.report.comparison --out results/gpu-report-settings
echo "table: $((SECONDS - start)) s"
