"""The data stages' code: the dataset's layout, the split (by protocol), decoding, and the
array store the training stages read (batches.py); no tensor code, so that editing the
augmentation re-runs no data stage."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from ..errors import UserError
from ..files import check_free_space, replacing
from ..progress import Progress
from .classes import ENGLISH, WNIDS

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
SUBSETS = ("train", "valid", "test")  # see split_dataset


class DataError(UserError, ValueError):
    """A dataset folder or image the pipeline cannot use; the message names it."""


def _class_files(folder: Path) -> dict[str, list[str]]:
    if not folder.is_dir():
        raise DataError(f"{folder}: missing; expected a folder of class folders (<wnid>/)")
    found = {p.name: p for p in folder.iterdir() if p.is_dir()}
    unknown = sorted(set(found) - set(WNIDS))
    if unknown:
        raise DataError(
            f"{folder}: unknown class folder(s) {', '.join(unknown)}; "
            f"expected Imagenette's WNIDs {', '.join(WNIDS)}"
        )
    files = {}
    for wnid in WNIDS:
        if wnid not in found:
            raise DataError(
                f"{folder}: class folder {wnid} ({ENGLISH[WNIDS.index(wnid)]}) is missing"
            )
        names = sorted(
            p.name
            for p in found[wnid].iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not names:
            raise DataError(f"{found[wnid]}: class folder has no images")
        files[wnid] = names
    return files


def list_images(root: Path) -> pd.DataFrame:
    """Every image of an Imagenette-shaped folder, sorted: path (relative to root), folder
    (train | val), wnid, label, class_name, and imagenet_val (an ILSVRC2012 validation
    image, the only kind a network pretrained on ImageNet has not seen)."""
    rows = []
    for folder in ("train", "val"):
        for label, (wnid, names) in enumerate(_class_files(root / folder).items()):
            rows += [
                {
                    "path": f"{folder}/{wnid}/{name}",
                    "folder": folder,
                    "wnid": wnid,
                    "label": label,
                    "class_name": ENGLISH[label],
                    "imagenet_val": name.startswith("ILSVRC2012_val_"),
                }
                for name in names
            ]
    return pd.DataFrame(rows)


def layout_problem(root: Path) -> str | None:
    """What makes `root` not an Imagenette folder (missing, empty or unknown class
    folders), relative to root; None when list_images can use it."""
    try:
        list_images(root)
    except DataError as err:
        return str(err).replace(str(root), root.name)
    return None


def split_dataset(
    root: Path, protocol: str, val_fraction: float = 0.3, seed: int = 0
) -> pd.DataFrame:
    """list_images' columns plus subset (train | valid | test), by protocol:

    - "val_folder", the report's: the whole train folder is `train`, the official val
      folder `valid` (early stopping and the reported accuracy); no test set.
    - "train_split": the train folder split (1 - val_fraction) : val_fraction into `train`
      and `valid`, stratified by class and fixed by the seed; the val folder is `test`.
    """
    index = list_images(root)
    if protocol == "val_folder":
        index["subset"] = np.where(index["folder"] == "train", "train", "valid")
        return index
    if protocol != "train_split":
        raise ValueError(f"unknown protocol {protocol!r}")
    index["subset"] = "test"
    rng = random.Random(seed)
    for _, rows in index[index["folder"] == "train"].groupby("label"):
        order = list(rows.index)
        rng.shuffle(order)
        n_valid = round(len(order) * val_fraction)
        index.loc[order[:n_valid], "subset"] = "valid"
        index.loc[order[n_valid:], "subset"] = "train"
    return index


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. 16-bit grayscale is scaled to 8 bits (PIL's own convert would
    clip it to white); palette, CMYK, RGBA, grayscale convert as PIL does."""
    if image.mode.startswith("I;16") or image.mode == "I":
        levels = np.asarray(image, dtype=np.float32) / 257.0
        image = Image.fromarray(np.clip(levels.round(), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    return image.convert("RGB")


def decode_image(path: Path, size: int) -> np.ndarray:
    """An image file -> (size, size, 3) uint8 RGB, the whole frame squashed to a square
    (as MATLAB's augmentedImageDatastore resizes). Raises DataError naming the file."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # lets libjpeg decode at a reduced scale
            image = _to_rgb(image)
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BICUBIC)
            array = np.asarray(image, dtype=np.uint8)
    except UnidentifiedImageError:
        raise DataError(
            f"{path}: not an image PIL can read (corrupt, empty or unknown format)"
        ) from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot decode image: {err}") from None
    return array


def write_array_store(
    root: Path, index: pd.DataFrame, size: int, target: Path, skip_bad: bool
) -> tuple[pd.DataFrame, list[str]]:
    """Decode every image in `index` once into a (N, size, size, 3) uint8 .npy at `target`.

    Checked for disk space first, written to a temporary file renamed into place (removed
    on any failure). Bad images stop the run with the
    list of them, or, with skip_bad, are left out; returns the kept rows and the bad paths.
    """
    # Before decoding (minutes at full size): is there room for the store?
    check_free_space(target, len(index) * size * size * 3 + 4096)
    good, bad, arrays = [], [], []
    progress = Progress("decode", len(index), "images")
    for i, path in enumerate(index["path"]):
        try:
            arrays.append(decode_image(root / path, size))
            good.append(i)
        except DataError as err:
            bad.append(str(err))
        progress.update()
    progress.finish()
    if bad and not skip_bad:
        listed = "\n  ".join(bad[:20]) + ("\n  ..." if len(bad) > 20 else "")
        raise DataError(
            f"{len(bad)} image(s) cannot be decoded (set data.skip_bad_images: "
            f"true to skip them):\n  {listed}"
        )
    kept = index.iloc[good].reset_index(drop=True)
    if kept.empty:
        raise DataError(f"{root}: no image could be decoded")
    header = {"descr": "|u1", "fortran_order": False, "shape": (len(kept), size, size, 3)}
    with replacing(target) as tmp, open(tmp, "wb") as file:
        # Plain writes, not a memory map: a full disk then raises an error, not SIGBUS.
        np.lib.format.write_array_header_1_0(file, header)
        for array in arrays:
            file.write(array.tobytes())
    return kept, bad
