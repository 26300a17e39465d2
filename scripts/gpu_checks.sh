#!/usr/bin/env bash
# The GPU checks (speed, the report's table) in one go, on a fresh CUDA machine with this
# repository copied:
#   1. bench:  bench/benchmark.py on cuda at 224 and 64 px (project epoch, plain baseline,
#              bare step and % of peak, each runtime switch flipped, the DVC variant timing);
#   2. report: the report's 15 rows and GoogLeNet at the report's settings (224/256 px,
#              up to 30 epochs, batch 128) as DVC experiments, timed, and the comparison.
#
#   [OUT=dir] [ARCHIVE=imagenette2-224.tgz] [GOOGLENET_WEIGHTS=googlenet-1378be20.pth] \
#   [JOBS=3] [BENCH_LIMIT=540] [REPORT_LIMIT=0] bash scripts/gpu_checks.sh [bench|report|all]
#
# Everything lands in $OUT (default results/gpu-checks), at most 8 files: benchmark.json,
# benchmark.md, timings.json, gpu_checks.log, report/report_comparison.{csv,md,png}.
# Data: $ARCHIVE, else imagenette2-224.tgz under shared/data or ../shared/data, else a
# stand-in of the real size made of the embedded sample's JPEGs (bench/standin_archive.py:
# timings hold, accuracies do not; a remote GPU host that takes at most 64 MiB per command
# gets the stand-in). GoogLeNet: $GOOGLENET_WEIGHTS, else random init (not the report's
# protocol, but the same cost). Python: .venv when there is one, else python3 plus the
# wheels in .whl/ (scripts/gpu_wheels.sh; a remote GPU host gets .whl/ uploaded with the
# working tree).
# BENCH_LIMIT / REPORT_LIMIT: seconds each part may take (0: no limit); a part cut short
# still writes what it finished. For a smoke run elsewhere: DEVICE=cpu SIZES=32
# BENCH_BATCHES=2 ROWS="network_84_8153" REPORT_SET="data.input_size=32 train.scaled_input=true train.max_epochs=1".
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
OUT=${OUT:-results/gpu-checks}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/gpu_checks.log") 2>&1
start=$SECONDS
stamp() { echo "[gpu_checks $((SECONDS - start)) s] $*"; }
limit() { if [ "${1:-0}" -gt 0 ]; then echo "timeout --signal=INT --kill-after=30 $1"; fi; }

# --- Python and DVC
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || stamp "no nvidia-smi"
"$PY" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', \
torchvision.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
have_dvc=yes
"$PY" -c "import dvc, dvclive" 2>/dev/null && command -v dvc >/dev/null || have_dvc=no
stamp "dvc available: $have_dvc; CPUs: $(nproc)"

# --- Data
ARCHIVE=${ARCHIVE:-}
data_note="the archive given in ARCHIVE"
for candidate in shared/data/imagenette2-224.tgz ../shared/data/imagenette2-224.tgz; do
  if [ -z "$ARCHIVE" ] && [ -f "$candidate" ]; then
    ARCHIVE=$candidate data_note="real data (imagenette2-224)"
  fi
done
if [ -z "$ARCHIVE" ]; then
  ARCHIVE=/tmp/imagenette2-standin.tgz
  data_note="stand-in: the embedded sample's JPEGs repeated to imagenette2's 13,394 images"
  [ -f "$ARCHIVE" ] || "$PY" bench/standin_archive.py "$ARCHIVE"
fi
ARCHIVE=$(realpath "$ARCHIVE")
stamp "data: $ARCHIVE ($data_note)"
timings=("\"data\": \"$data_note\"" "\"archive\": \"$(basename "$ARCHIVE")\"")

# --- 1. The benchmark on the GPU
if [ "$what" = all ] || [ "$what" = bench ]; then
  stamp "benchmark (limit ${BENCH_LIMIT:-540} s)"
  dvc_flag=(--dvc-archive sample/imagenette2-sample.tgz)
  [ "$have_dvc" = yes ] || dvc_flag=(--no-dvc)
  t=$SECONDS
  # shellcheck disable=SC2086 # SIZES is a list
  $(limit "${BENCH_LIMIT:-540}") "$PY" bench/benchmark.py "$ARCHIVE" --device "${DEVICE:-cuda}" \
    --sizes ${SIZES:-224 64} --batches "${BENCH_BATCHES:-60}" \
    --step-batches "${STEP_BATCHES:-30}" --workers "$(nproc)" --switches "${dvc_flag[@]}" \
    --out "$OUT"
  rc=$?
  timings+=("\"bench_s\": $((SECONDS - t))" "\"bench_exit\": $rc")
  stamp "benchmark: exit $rc after $((SECONDS - t)) s"
fi

# --- 2. The report's table at the report's settings, as DVC experiments
if { [ "$what" = all ] || [ "$what" = report ]; } && [ "$have_dvc" = no ]; then
  stamp "report: skipped, dvc is not installed (bash scripts/gpu_wheels.sh, send .whl along)"
  timings+=("\"report\": \"skipped: no dvc\"")
elif [ "$what" = all ] || [ "$what" = report ]; then
  work=$(mktemp -d /tmp/gpu-report-XXXXXX)/project
  mkdir -p "$work"
  tar -C "$repo" --exclude=./.venv --exclude=./.whl --exclude=./.git --exclude=./data \
    --exclude=./.dvc/cache --exclude=./.dvc/tmp --exclude='*.onnx' --exclude='*.onnx.data' \
    --exclude=./results -cf - . | tar -C "$work" -xf -
  cd "$work"
  export PYTHONPATH=$work/src:${PYTHONPATH#"$repo/src:"}
  rm -f dvc.lock # a cold start: no lock of another run
  git init -q -b main && git config user.name gpu-checks && git config user.email gpu@example.invalid
  "$PY" - "$ARCHIVE" "${GOOGLENET_WEIGHTS:-none}" <<'EOF'
import sys
from pathlib import Path
from imagenette_repro.experiments.catalogue import overrides, write_params
archive, weights = sys.argv[1:]
real = overrides(["real-images"])  # experiments.yaml: the md5 of the real archive
md5 = real["data.md5"] if Path(archive).name == Path(real["data.archive"]).name else None
write_params(Path("."), {"data.archive": archive, "data.md5": md5, "googlenet.weights": weights})
EOF
  git add -A && git commit -qm "gpu checks: the report's settings on $(basename "$ARCHIVE")"
  report_start=$SECONDS
  stamp "report: shared stages (download, split, prepare at 224 px, GoogLeNet)"
  t=$SECONDS
  $(limit "${REPORT_LIMIT:-0}") dvc repro finetune_googlenet
  timings+=("\"shared_stages_s\": $((SECONDS - t))")
  stamp "report: shared stages took $((SECONDS - t)) s; now the 15 rows, ${JOBS:-3} at a time"
  t=$SECONDS
  left=0
  [ "${REPORT_LIMIT:-0}" -gt 0 ] && left=$((REPORT_LIMIT - (SECONDS - report_start)))
  [ "${REPORT_LIMIT:-0}" -gt 0 ] && [ "$left" -lt 30 ] && left=30
  overrides=()
  for setting in ${REPORT_SET:-}; do overrides+=(-S "$setting"); done
  # shellcheck disable=SC2086 # ROWS is a list
  $(limit "$left") "$PY" -m imagenette_repro.experiments.queue_rows queue ${ROWS:-} --run -j "${JOBS:-3}" \
    "${overrides[@]}"
  rc=$?
  [ $rc -eq 124 ] || [ $rc -eq 130 ] && dvc queue stop --kill || true
  timings+=("\"rows_s\": $((SECONDS - t))" "\"rows_exit\": $rc" "\"jobs\": ${JOBS:-3}")
  timings+=("\"report_total_s\": $((SECONDS - report_start))")
  stamp "report: rows took $((SECONDS - t)) s (exit $rc); whole reproduction $((SECONDS - report_start)) s"
  dvc queue status || true
  "$PY" -m imagenette_repro.report.comparison --out "$OUT/report" || stamp "report: no comparison"
  finished=0 # experiments with results: the comparison's lines but its header
  [ -f "$OUT/report/report_comparison.csv" ] &&
    finished=$(($(wc -l <"$OUT/report/report_comparison.csv") - 1))
  timings+=("\"experiments_finished\": $finished")
  cd "$repo"
fi

timings+=("\"total_s\": $((SECONDS - start))")
(IFS=,; echo "{${timings[*]}}") | "$PY" -m json.tool >"$OUT/timings.json"
stamp "done: $(ls "$OUT" | tr '\n' ' ')"
cat "$OUT/timings.json"
