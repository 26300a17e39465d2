"""Build the small embedded sample archive from the full imagenette2-224 tarball.

Selection rule (deterministic, independent of Python version and archive order):
for each split (train, val) and each of the 10 classes, the image names are sorted
and ranked by sha256("<seed>:<split>/<wnid>/<name>") with seed 0 (a seeded shuffle).
First the best-ranked `ILSVRC2012_val_*` images are taken (2 per class and split,
fewer only if not available: these are unseen by ImageNet-pretrained networks),
then the rest up to the quota (20 train, 6 val) from the best-ranked of all the
remaining images. The original JPEG bytes are kept (no re-encoding).

The output tar.gz is byte-reproducible: sorted entries with their directories,
mtime 0, uid/gid 0, empty user/group names, modes 0o644/0o755, PAX format and a
gzip header with mtime 0 and no file name (given the same zlib).

Usage (from the repository root):
    python scripts/make_sample.py [SOURCE_TGZ] [OUTPUT_TGZ]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path, PurePosixPath

from imagenette_repro.files import replacing
from imagenette_repro.stage_io import file_hash


def write_bytes(path: Path, data: bytes) -> None:
    """path's new content, whole or not at all (files.replacing), readable by all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)


SEED = 0
PER_CLASS = {"train": 20, "val": 6}
MIN_ILSVRC_VAL = 2  # per class and split, where available
ROOT_NAME = "imagenette2-sample"
DEFAULT_SOURCE = Path("../shared/data/imagenette2-224.tgz")
DEFAULT_OUTPUT = Path("sample/imagenette2-sample.tgz")


def rank_key(split: str, wnid: str, name: str) -> str:
    """Seeded pseudo-random order of a file within its class."""
    return hashlib.sha256(f"{SEED}:{split}/{wnid}/{name}".encode()).hexdigest()


def select(split: str, wnid: str, names: list[str]) -> list[str]:
    """Pick PER_CLASS[split] names of one class (see the module docstring)."""
    names = sorted(names)
    quota = PER_CLASS[split]
    if len(names) < quota:
        raise SystemExit(f"error: {split}/{wnid} has {len(names)} images, need {quota}")
    ranked = sorted(names, key=lambda n: rank_key(split, wnid, n))
    unseen = [n for n in ranked if n.startswith("ILSVRC2012_val_")]
    chosen = unseen[:MIN_ILSVRC_VAL]
    chosen += [n for n in ranked if n not in chosen][: quota - len(chosen)]
    return sorted(chosen)


def scan(source: Path) -> tuple[str, dict[tuple[str, str], list[str]]]:
    """Return the source root folder name and {(split, wnid): [file names]}."""
    groups: dict[tuple[str, str], list[str]] = {}
    roots = set()
    with tarfile.open(source, "r:gz") as tar:
        for m in tar:
            parts = PurePosixPath(m.name).parts
            if m.isfile() and len(parts) == 4 and parts[1] in PER_CLASS:
                roots.add(parts[0])
                groups.setdefault((parts[1], parts[2]), []).append(parts[3])
    if len(roots) != 1:
        raise SystemExit(f"error: {source}: expected one top folder, found {sorted(roots)}")
    return roots.pop(), groups


def read_members(source: Path, wanted: set[str]) -> dict[str, bytes]:
    """Read the bytes of the wanted member names in one pass over the archive."""
    found: dict[str, bytes] = {}
    with tarfile.open(source, "r|gz") as tar:
        for m in tar:
            if m.name in wanted:
                f = tar.extractfile(m)
                if f is None:
                    raise SystemExit(f"error: {source}: {m.name} is not a file")
                found[m.name] = f.read()
    missing = wanted - found.keys()
    if missing:
        raise SystemExit(f"error: {source}: could not read {sorted(missing)[:3]}")
    return found


def tar_info(name: str, size: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if size is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o644
    return info


def build_tgz(files: dict[str, bytes]) -> bytes:
    """Deterministic tar.gz of `files` ({posix path: bytes}) with all parent dirs."""
    dirs = {str(p) for name in files for p in PurePosixPath(name).parents if str(p) != "."}
    entries = [(d, None) for d in dirs] + [(n, files[n]) for n in files]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        # Sorting by path parts puts each directory right before its contents.
        for name, data in sorted(entries, key=lambda e: PurePosixPath(e[0]).parts):
            if data is None:
                tar.addfile(tar_info(name + "/", None))
            else:
                tar.addfile(tar_info(name, len(data)), io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=out, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def readme(source: Path, source_md5: str, output: Path, size: int, md5: str, counts: dict) -> str:
    """The sample folder's README.md text (generated, so the numbers stay true)."""
    rows = "\n".join(
        f"| {wnid} | {counts[('train', wnid)][0]} | {counts[('train', wnid)][1]} "
        f"| {counts[('val', wnid)][0]} | {counts[('val', wnid)][1]} |"
        for wnid in sorted({w for _, w in counts})
    )
    total = {s: sum(c[0] for (sp, _), c in counts.items() if sp == s) for s in PER_CLASS}
    return f"""# Embedded sample of Imagenette

`{output.name}` is a small, real subset of Imagenette for tests, smoke runs
and CI without the full download: {total["train"]} train and {total["val"]} val images,
{PER_CLASS["train"]} train and {PER_CLASS["val"]} val per class for the 10 classes.
It is shaped like fastai's archives:
`{ROOT_NAME}/{{train,val}}/<wnid>/<file>.JPEG` (no `noisy_imagenette.csv`).

- size: {size:,} bytes
- md5: {md5} (also in `{output.stem}.md5`)
- source: `{source.name}` (md5 {source_md5}): all 13,394 Imagenette
  images squashed to 224x224 px, official train/val split; see the README beside it

## How it was built

```
python scripts/make_sample.py {source} {output}
```

For each split and class the image names are sorted and ranked by
`sha256("{SEED}:<split>/<wnid>/<name>")` (a seeded shuffle, seed {SEED}). The
{MIN_ILSVRC_VAL} best-ranked `ILSVRC2012_val_*` images (ImageNet validation images,
unseen by ImageNet-pretrained networks) are taken first, then the best-ranked of
the rest up to the quota. The JPEG bytes are copied unchanged. The tar is
deterministic (sorted entries with directories, mtime 0, uid/gid 0, no owner
names, modes 644/755, PAX format; gzip mtime 0, no file name), so rerunning the
command reproduces the same bytes and md5 (given the same zlib).

| wnid | train | of which ILSVRC2012_val_* | val | of which ILSVRC2012_val_* |
|---|---|---|---|---|
{rows}

## Provenance and terms

These are real Imagenette images (fastai's `imagenette2`, a 10-class subset of
ImageNet), resized to 224x224. They come from ImageNet and fall under ImageNet's
terms of use (non-commercial research and education).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    source: Path = args.source
    output: Path = args.output
    if not source.is_file():
        print(f"error: source archive {source} not found", file=sys.stderr)
        return 2

    src_root, groups = scan(source)
    if len({w for _, w in groups}) != 10:
        print(f"error: {source}: expected 10 classes per split", file=sys.stderr)
        return 2
    chosen = {key: select(*key, names) for key, names in sorted(groups.items())}
    wanted = {f"{src_root}/{split}/{wnid}/{n}" for (split, wnid), ns in chosen.items() for n in ns}
    data = read_members(source, wanted)
    files = {ROOT_NAME + name[len(src_root) :]: blob for name, blob in data.items()}
    tgz = build_tgz(files)
    md5 = hashlib.md5(tgz).hexdigest()

    write_bytes(output, tgz)
    write_bytes(output.with_suffix(".md5"), f"{md5}\n".encode())
    counts = {
        key: (len(ns), sum(n.startswith("ILSVRC2012_val_") for n in ns))
        for key, ns in chosen.items()
    }
    source_md5 = file_hash(source, "md5")
    text = readme(source, source_md5, output, len(tgz), md5, counts)
    write_bytes(output.parent / "README.md", text.encode())
    print(f"{output}: {len(files)} images, {len(tgz):,} bytes, md5 {md5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
