#!/usr/bin/env bash
# After a run (make sample): push its outputs to the project's DVC remote, then check that a
# second clone gets them without training (README, Share). The second clone is a temporary
# `git clone` of HEAD given this clone's params.yaml, dvc.lock and metrics, as `git pull`
# would after a commit; there the anchor's `dvc exp run --pull --allow-missing` must skip
# every stage, `dvc pull` must bring every output, `dvc status` must be clean and the
# pulled models must predict. Uses the remote this clone uses (.dvc/config.local included).
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python -m imagenette_repro.experiments.remote push
git clone -q . "$work/second"
cp params.yaml dvc.lock "$work/second/"
cp -r metrics "$work/second/"
if [ -f .dvc/config.local ]; then cp .dvc/config.local "$work/second/.dvc/"; fi
cd "$work/second"
git config user.name >/dev/null || git config user.name "check-sharing"
git config user.email >/dev/null || git config user.email "check-sharing@example.invalid"
git add -A
git diff --cached --quiet || git commit -qm "the run pushed from the first clone"

dvc exp run --pull --allow-missing 2>&1 | tee "$work/exp-run.log"
if grep -q "Running stage" "$work/exp-run.log"; then
  echo "check_sharing: a stage ran in the second clone; the pushed run should cover all" >&2
  exit 1
fi
python -m imagenette_repro.experiments.remote pull
status=$(dvc status --json)
if [ "$status" != "{}" ]; then
  echo "check_sharing: dvc status after the pull is not clean: $status" >&2
  exit 1
fi
python -m imagenette_repro.inference.predict --top 1 data/raw/imagenette/val/n01440764 | tail -3
echo "check_sharing: the second clone pulled every output and predicts; nothing trained"
