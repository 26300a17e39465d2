#!/usr/bin/env bash
# The report at its own settings in one run on a remote GPU host, on the real images: the
# headline row, the init question, conclusions 2 and 3, a benchmark, then further rows by
# falling report accuracy until the time limit; results written after every step. The
# images come in parts made by scripts/gpu_data_parts.sh (docs/gpu.md: "The report's
# settings in one run on a remote GPU host" gives the exact commands). Options:
# python scripts/gpu_reproduce.py --help.
#   bash scripts/gpu_reproduce.sh [--limit 480] [--out results/gpu-reproduce] [...]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
out=results/gpu-reproduce
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = --out ] && out=${args[$((i + 1))]}
done
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu_reproduce.log"
"$PY" scripts/gpu_reproduce.py "$@" 2>&1 | tee -a "$out/gpu_reproduce.log"
exit "${PIPESTATUS[0]}"
