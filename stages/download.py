"""DVC stage: fetch, verify and extract the archive named by params.yaml data.archive."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

from imagenette_repro.download import DownloadError, download_dataset

PARAMS = Path("params.yaml")
TARGET = Path("data/raw/imagenette")
INFO = Path("data/raw/download.json")


def write_json_atomic(path: Path, data: dict) -> None:
    """Write `data` as JSON to a temp file beside `path`, then replace `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_data_params(path: Path = PARAMS) -> tuple[str, str | None]:
    """Return (data.archive, data.md5) from params.yaml; md5 may be missing or null."""
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DownloadError(f"could not read {path}: {exc}") from exc
    data = params.get("data") if isinstance(params, dict) else None
    if not isinstance(data, dict) or not data.get("archive"):
        raise DownloadError(f"{path} has no data.archive (a known name, a URL or a path)")
    md5 = data.get("md5")
    return str(data["archive"]), (str(md5) if md5 else None)


def main() -> int:
    try:
        archive, md5 = read_data_params()
        info = download_dataset(archive, md5, TARGET)
        write_json_atomic(INFO, info)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{TARGET}: {info['train_images']} train / {info['val_images']} val images "
        f"(md5 {info['md5']}, verified: {info['md5_verified']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
