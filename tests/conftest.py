"""Shared fixtures: params from the repository, and tiny datasets of real JPEGs."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from imagenette_repro.classes import WNIDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def params(repo_params) -> dict:
    return copy.deepcopy(repo_params)


def write_jpeg(path: Path, seed: int, size: int = 40, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, "JPEG")


def make_dataset(root: Path, train_per_class: int, val_per_class: int) -> Path:
    """An Imagenette-shaped folder of small real JPEGs; a few are ILSVRC2012_val_* files."""
    seed = 0
    for folder, count in (("train", train_per_class), ("val", val_per_class)):
        for wnid in WNIDS:
            for i in range(count):
                name = f"ILSVRC2012_val_{i:08d}.JPEG" if i < 2 else f"{wnid}_{i}.JPEG"
                write_jpeg(root / folder / wnid / name, seed)
                seed += 1
    return root


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "imagenette", train_per_class=10, val_per_class=3)
