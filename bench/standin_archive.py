"""A stand-in for imagenette2-224 where the real archive cannot be had (a remote GPU
host that takes at most 64 MiB per command): the embedded sample's real 224x224 JPEGs,
each class's repeated to the real per-class counts of imagenette2 (9,469 train, 3,925 val
images).

    python bench/standin_archive.py OUT.tgz [--sample sample/imagenette2-sample.tgz]

Decoding and training then cost what they cost on the real data, so timings hold; the
accuracies do not (the same 26 images per class over and over).
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

from imagenette_repro.data.classes import WNIDS
from imagenette_repro.files import replacing

ROOT = Path(__file__).resolve().parents[1]

# imagenette2's images per class (in WNIDS order), from its manifest.
TRAIN_COUNTS = [963, 955, 993, 858, 941, 956, 961, 931, 951, 960]
VAL_COUNTS = [387, 395, 357, 386, 409, 394, 389, 419, 399, 390]


def build(sample: Path, target: Path) -> int:
    files: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    with tarfile.open(sample) as tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if member.isfile() and len(parts) >= 4 and parts[-3] in ("train", "val"):
                data = tar.extractfile(member).read()
                files.setdefault((parts[-3], parts[-2]), []).append((parts[-1], data))
    total = 0
    with replacing(target) as tmp, tarfile.open(tmp, "w:gz", compresslevel=1) as out:
        for folder, counts in (("train", TRAIN_COUNTS), ("val", VAL_COUNTS)):
            for wnid, count in zip(WNIDS, counts, strict=True):
                images = sorted(files[(folder, wnid)])
                for i in range(count):
                    name, data = images[i % len(images)]
                    stem, dot, suffix = name.rpartition(".")
                    info = tarfile.TarInfo(
                        f"imagenette2-standin/{folder}/{wnid}/{stem}_r{i // len(images)}"
                        f"{dot}{suffix}"
                    )
                    info.size, info.mtime = len(data), 0
                    out.addfile(info, io.BytesIO(data))
                    total += 1
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", type=Path)
    parser.add_argument("--sample", type=Path, default=ROOT / "sample" / "imagenette2-sample.tgz")
    args = parser.parse_args()
    start = time.monotonic()
    count = build(args.sample, args.target)
    print(f"{args.target}: {count} images in {time.monotonic() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
