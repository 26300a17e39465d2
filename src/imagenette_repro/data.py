"""The split (by protocol), the decoded array store, and batches augmented as tensors."""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .classes import ENGLISH, WNIDS
from .errors import UserError
from .files import check_free_space, replacing

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
    progress = Progress(len(index), "decode")
    for i, path in enumerate(index["path"]):
        try:
            arrays.append(decode_image(root / path, size))
            good.append(i)
        except DataError as err:
            bad.append(str(err))
        progress.update(i + 1)
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


@dataclass
class ImageSet:
    """Images (N, S, S, 3) uint8 and labels (N,) int64, held in memory."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> ImageSet:
        rows = torch.from_numpy(np.flatnonzero(mask)).to(self.images.device)
        return ImageSet(self.images[rows], self.labels[rows])

    def to(self, device: torch.device) -> ImageSet:
        return ImageSet(self.images.to(device), self.labels.to(device))


def place(data: ImageSet, device: torch.device, on_device: bool | str) -> ImageSet:
    """Where batches are gathered from. On CUDA, on_device True copies the uint8 images to
    the GPU once (batches are then gathered there: no host work per batch), "auto" does so
    when they take less than a quarter of the GPU's free memory; otherwise (and on any
    other device) they stay in host memory, and batches() gathers CUDA batches into pinned
    memory for non-blocking copies."""
    if device.type != "cuda" or on_device is False:
        return data
    if on_device == "auto":
        free, _ = torch.cuda.mem_get_info(device)
        if data.images.nbytes > free / 4:
            return data
    return data.to(device)


def load_store(folder: Path, split_index: Path) -> tuple[ImageSet, pd.DataFrame]:
    """The prepared array store, and its index (one row per stored image) with each
    image's subset from the split."""
    index = pd.read_csv(folder / "index.csv")
    images = np.load(folder / "images.npy")
    if len(images) != len(index):
        raise DataError(
            f"{folder}: images.npy has {len(images)} images but index.csv "
            f"{len(index)} rows; re-run the prepare stage"
        )
    subsets = pd.read_csv(split_index, usecols=["path", "subset"])
    index = index.merge(subsets, on="path", how="left", validate="one_to_one")
    if index["subset"].isna().any():
        missing = index.loc[index["subset"].isna(), "path"].iloc[0]
        raise DataError(f"{split_index}: no subset for {missing}; re-run the split stage")
    labels = torch.tensor(index["label"].to_numpy(), dtype=torch.int64)
    return ImageSet(torch.from_numpy(images), labels), index


def mean_image(images: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """The mean image (3, S, S) in [0, 1], MATLAB's "zerocenter" normalisation."""
    total = torch.zeros(images.shape[1:], dtype=torch.float64)
    for start in range(0, len(images), chunk):
        total += images[start : start + chunk].to(torch.float64).sum(0)
    return (total / len(images) / 255).permute(2, 0, 1).float()


def batches(
    data: ImageSet,
    batch_size: int,
    generator: torch.Generator | None,
    drop_last: bool,
    device: torch.device | None = None,
):
    """(images uint8 NHWC, labels) batches, shuffled when a generator is given (the order is
    drawn on the CPU, so a seed fixes it on any device). Images held on the GPU are
    gathered there; host images bound for a CUDA `device` are gathered into pinned memory,
    so that to_input's copy does not block."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    order = order.to(data.images.device)
    stop = n - n % batch_size if drop_last else n
    pin = device is not None and device.type == "cuda" and data.images.device.type == "cpu"
    for start in range(0, stop, batch_size):
        rows = order[start : start + batch_size]
        if pin:
            # Torch's pinned-memory cache reuses a buffer only once its copy is done.
            images = torch.empty(
                (len(rows), *data.images.shape[1:]), dtype=torch.uint8, pin_memory=True
            )
            torch.index_select(data.images, 0, rows, out=images)
            yield images, data.labels[rows].pin_memory()
        else:
            yield data.images[rows], data.labels[rows]


def to_input(
    images: torch.Tensor, device: torch.device, channels_last: bool = True
) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1] on device; in channels_last memory layout (a view
    of NHWC, so no copy is needed) unless channels_last is false."""
    images = images.to(device, non_blocking=True)
    x = images.permute(0, 3, 1, 2).float().div_(255)
    return x if channels_last else x.contiguous()


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float],
    translation: float,
    reflection: bool,
    rows: slice = slice(None),
) -> torch.Tensor:
    """MATLAB imageDataAugmenter on a whole batch as one affine warp: independent random
    x/y scale in `scale`, x/y shift in [-translation, translation] pixels, optional
    horizontal reflection; outside pixels are 0. The random draws use `generator` (CPU),
    so a seed fixes them on any device. Only the images `rows` of the batch are warped
    and returned (a process's share under DDP), with the draws of the whole batch."""
    n, _, height, width = x.shape
    draws = torch.rand(n, 5, generator=generator)
    sx = scale[0] + (scale[1] - scale[0]) * draws[:, 0]
    sy = scale[0] + (scale[1] - scale[0]) * draws[:, 1]
    tx = (2 * draws[:, 2] - 1) * translation * 2 / width  # pixels -> [-1, 1] coordinates
    ty = (2 * draws[:, 3] - 1) * translation * 2 / height
    flip = torch.where(draws[:, 4] < 0.5, -1.0, 1.0) if reflection else torch.ones(n)
    # affine_grid maps output to input coordinates: input = (output - t) / s
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = flip / sx
    theta[:, 0, 2] = -tx / sx
    theta[:, 1, 1] = 1 / sy
    theta[:, 1, 2] = -ty / sy
    theta = theta[rows].contiguous()
    if x.device.type == "cuda":
        theta = theta.pin_memory()
    theta = theta.to(x.device, x.dtype, non_blocking=True)
    # grid_sample returns NCHW-contiguous; keep the input's memory layout.
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    x = x[rows]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if channels_last:
        warped = warped.contiguous(memory_format=torch.channels_last)
    return warped


class Progress:
    """One progress line at most every `every` seconds: count, rate, time left."""

    def __init__(self, total: int, label: str, every: float = 5.0) -> None:
        self.total, self.label, self.every = total, label, every
        self.start = self.last = time.monotonic()

    def update(self, done: int, extra: str = "") -> None:
        now = time.monotonic()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        left = (self.total - done) / rate if rate > 0 else math.inf
        print(
            f"{self.label}: {done}/{self.total} {rate:.1f}/s, {left:.0f} s left {extra}",
            file=sys.stderr,
            flush=True,
        )
