#!/usr/bin/env bash
# Cut an archive into parts that each fit one call of the GPU device tool (64 MiB per call,
# working tree included), with the sha256 of every part and of the whole, so that the real
# images reach the GPU machine over consecutive calls (scripts/gpu_reproduce.sh puts them
# back together and checks them). docs: README, "The report's settings on one GPU lease".
#   bash scripts/gpu_data_parts.sh [ARCHIVE [PART_MIB [DIR]]]
# defaults: ../shared/data/imagenette2-224.tgz, 58 MiB, .gpu (ignored by git here)
set -euo pipefail
cd "$(dirname "$0")/.."
archive=${1:-../shared/data/imagenette2-224.tgz}
part_mib=${2:-58}
dir=${3:-.gpu}
[ -f "$archive" ] || { echo "error: $archive: no such archive" >&2; exit 2; }
name=$(basename "$archive")
mkdir -p "$dir"
if [ "$dir" = .gpu ]; then # keep the parts out of git (and out of the tree the tool sends)
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")"
  grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
fi
rm -f "$dir/$name".part-* "$dir/$name.sha256sums"
split -b "${part_mib}M" -a 2 "$archive" "$dir/$name.part-"
(cd "$dir" && sha256sum "$name".part-* >"$name.sha256sums.tmp")
echo "$(sha256sum <"$archive" | cut -d' ' -f1)  $name" >>"$dir/$name.sha256sums.tmp"
mv "$dir/$name.sha256sums.tmp" "$dir/$name.sha256sums"
ls -l "$dir/$name".part-* "$dir/$name.sha256sums"
