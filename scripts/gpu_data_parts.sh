#!/usr/bin/env bash
# Cut an archive into parts that each fit one command to a remote GPU host (64 MiB uploaded
# per command, working tree included), with the sha256 of every part and of the whole, so
# that the real images reach the GPU machine over consecutive commands
# (scripts/gpu_reproduce.sh puts them back together and checks them). docs/gpu.md: "The
# report's settings in one run on a remote GPU host".
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
if [ "$dir" = .gpu ]; then # out of git (and of the tree copied to the GPU host)
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
