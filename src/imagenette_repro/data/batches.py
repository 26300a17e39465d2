"""The prepared images as tensors, for training and evaluation: the array store loaded
(written by data.write_array_store), batches, MATLAB's augmentation, random-resized
crops and flips alone, network input (the stored image, or its centre, at the network's
side)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .dataset import DataError


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


def centre_view(x: torch.Tensor, side: int | None = None, crop: float = 1.0) -> torch.Tensor:
    """The centre square of each image covering `crop` of its side (1: the whole image),
    resized to side x side (antialiased bilinear; None: kept at its size), in x's memory
    layout. What a network sees at validation, and in training without augmentation."""
    size = x.shape[-1]
    if crop < 1:
        kept = max(1, round(size * crop))
        start = (size - kept) // 2
        x = x[..., start : start + kept, start : start + kept]
    side = side or size
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float],
    translation: float,
    reflection: bool,
    rows: slice = slice(None),
    side: int | None = None,
) -> torch.Tensor:
    """MATLAB imageDataAugmenter on a whole batch as one affine warp: independent random
    x/y scale in `scale`, x/y shift in [-translation, translation] pixels, optional
    horizontal reflection; outside pixels are 0. The random draws use `generator` (CPU),
    so a seed fixes them on any device. Only the images `rows` of the batch are warped
    and returned (a process's share under DDP), with the draws of the whole batch; at
    side x side (None: the batch's own side)."""
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
    return _warp(x, theta[rows].contiguous(), rows, padding="zeros", side=side)


def random_flip(
    x: torch.Tensor, generator: torch.Generator, rows: slice = slice(None)
) -> torch.Tensor:
    """Random horizontal flips alone (each image mirrored with probability 1/2, its
    pixels otherwise untouched): no resampling. Draws and `rows` as in augment."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    x, flip = x[rows], flip[rows].to(x.device, non_blocking=True)
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def random_resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    area_min: float,
    reflection: bool,
    rows: slice = slice(None),
    side: int | None = None,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """torchvision's RandomResizedCrop on a whole batch as one affine warp, to side x side
    (None: the batch's own side; from a larger stored image a crop keeps more of its
    detail): each image's crop covers a fraction of its area drawn from [area_min, 1],
    with an aspect ratio drawn log-uniformly from `ratio` (a side longer than the image is
    cut to the image's: torchvision redraws instead), at a uniformly drawn place inside the
    image; optional horizontal reflection. Draws and `rows` as in augment."""
    n = x.shape[0]
    draws = torch.rand(n, 5, generator=generator)
    area = area_min + (1 - area_min) * draws[:, 0]
    log_ratio = torch.log(torch.tensor(ratio))
    aspect = torch.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * draws[:, 1])
    width = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the image's sides
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    # The crop's centre in [-1, 1] coordinates, keeping the crop inside the image.
    cx = (2 * draws[:, 2] - 1) * (1 - width)
    cy = (2 * draws[:, 3] - 1) * (1 - height)
    flip = torch.where(draws[:, 4] < 0.5, -1.0, 1.0) if reflection else torch.ones(n)
    theta = torch.zeros(n, 2, 3)  # output (x, y) in [-1, 1] -> input coordinates
    theta[:, 0, 0] = flip * width
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = height
    theta[:, 1, 2] = cy
    # A crop reaching the image's edge samples up to half a pixel beyond the outer pixel
    # centres: "border" repeats the edge there, where "zeros" would darken it.
    return _warp(x, theta[rows].contiguous(), rows, padding="border", side=side)


def _warp(
    x: torch.Tensor, theta: torch.Tensor, rows: slice, padding: str, side: int | None = None
) -> torch.Tensor:
    """The images `rows` of x warped by the affine maps theta (bilinear; `padding`: what
    lies outside) to side x side (None: x's own), in x's memory layout."""
    if x.device.type == "cuda":
        theta = theta.pin_memory()
    theta = theta.to(x.device, x.dtype, non_blocking=True)
    # grid_sample returns NCHW-contiguous; keep the input's memory layout.
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    x = x[rows]
    shape = [*x.shape[:2], side, side] if side else list(x.shape)
    grid = F.affine_grid(theta, shape, align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)
    if channels_last:
        warped = warped.contiguous(memory_format=torch.channels_last)
    return warped
