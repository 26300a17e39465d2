"""What every stage script shares: params, clear errors instead of tracebacks, files."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .architecture import ArchitectureError
from .data import DataError, load_store
from .download import DownloadError
from .models import WeightsError
from .params import ParamsError

STORE = Path("data/prepared")
SPLIT_INDEX = Path("data/split/index.csv")
EXPECTED_ERRORS = (ParamsError, ArchitectureError, DataError, DownloadError, WeightsError)


def run(main: Callable[[], None]) -> None:
    """Run a stage; a known fault ends it with one clear line and exit code 2."""
    try:
        main()
    except EXPECTED_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def write_json(path: str | Path, data: dict | list) -> None:
    """Write JSON atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(*parts: object) -> str:
    """A short hash of JSON-able parts: what a checkpoint was made with."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def setup_torch(params: dict) -> torch.device:
    """Seed torch, set CPU threads, pick the device from params."""
    from .training import pick_device

    torch.manual_seed(params["seed"])
    if params["runtime"]["num_threads"] > 0:
        torch.set_num_threads(params["runtime"]["num_threads"])
    return pick_device(params["runtime"]["device"])


def code_fingerprint() -> str:
    """A hash of the package's code and the running stage script."""
    files = sorted(Path(__file__).parent.glob("*.py")) + [Path(sys.argv[0])]
    return fingerprint(*(file_sha256(path) for path in files if path.is_file()))


def load_training_data(batch_size_key: str, batch_size: int):
    """The array store with the split: (all images, index, train subset, valid subset,
    fingerprint of the data), the batch size checked against the training set."""
    data, index = load_store(STORE, SPLIT_INDEX)
    train = data.subset((index["subset"] == "train").to_numpy())
    valid = data.subset((index["subset"] == "valid").to_numpy())
    if batch_size > len(train):
        raise ParamsError(
            f"params.yaml: '{batch_size_key}' is {batch_size}, more than the "
            f"{len(train)} training images"
        )
    data_hash = fingerprint(
        file_sha256(STORE / "images.npy"),
        file_sha256(STORE / "index.csv"),
        file_sha256(SPLIT_INDEX),
    )
    return data, index, train, valid, data_hash
