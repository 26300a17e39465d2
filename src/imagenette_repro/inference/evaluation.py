"""Accuracy of a trained model on the val folder (the report's measure), its
ImageNet-validation images (unseen by ImageNet pretraining), the held-out part of the
train folder (protocol train_split), and the training images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.batches import ImageSet, batches, centre_view, place, to_input
from ..data.classes import ENGLISH
from ..progress import Progress
from ..runtime import Runtime


@torch.inference_mode()
def predict(
    model: nn.Module,
    data: ImageSet,
    device: torch.device,
    batch_size: int = 256,
    runtime: Runtime | None = None,
    label: str | None = None,
    side: int | None = None,
    crop: float = 1.0,
) -> tuple[torch.Tensor, float]:
    """Logits for every image (in order, on the CPU) and the mean cross-entropy loss; the
    model sees each image's centre `crop` of its side at side x side (batches.centre_view).
    Results stay on the device until the end: no host sync per batch. With a `label`, a
    progress line (the images are counted as batches are queued, not as they finish)."""
    runtime = runtime or Runtime()
    progress = Progress(label, len(data)) if label else None
    model.eval()
    outputs = []
    # float64 as the Python float it replaces (MPS has no float64)
    loss_sum = torch.zeros(
        (), dtype=torch.float32 if device.type == "mps" else torch.float64, device=device
    )
    for images, labels in batches(data, batch_size, None, drop_last=False, device=device):
        x = centre_view(to_input(images, device, runtime.channels_last), side, crop)
        with runtime.autocast(device):
            logits = model(x).float()
        labels = labels.to(device, non_blocking=True)
        loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").to(loss_sum.dtype)
        outputs.append(logits)
        if progress:
            progress.update(len(labels))
    if progress:
        progress.finish()
    if not outputs:
        return torch.zeros(0, 0), 0.0
    return torch.cat(outputs).cpu(), loss_sum.item() / max(len(data), 1)


# name -> rows of the prepared index it covers
EVALUATION_SETS = {
    # In eval mode (no dropout, no augmentation): beside val_folder, the measure of
    # overfitting.
    "train": lambda index: index["subset"] == "train",
    # Protocol train_split: the part of the train folder that validated (early stopping).
    "held_out": lambda index: (index["subset"] == "valid") & (index["folder"] == "train"),
    # The official val folder: what the report measured, under either protocol.
    "val_folder": lambda index: index["folder"] == "val",
    "val_folder_imagenet_val": lambda index: (index["folder"] == "val") & index["imagenet_val"],
    # The rest of the val folder: ImageNet training images, which an ImageNet-pretrained
    # network has seen in pretraining (the leakage the report missed).
    "val_folder_imagenet_train": lambda index: (index["folder"] == "val") & ~index["imagenet_val"],
}
# The val folder and its two parts (zero-shot accuracy of a pretrained network).
VAL_FOLDER_SETS = ("val_folder", "val_folder_imagenet_val", "val_folder_imagenet_train")
# The sets a confusion matrix is written for (metrics/confusion/<model>_<set>.json).
CONFUSION_SETS = ("val_folder",)


def evaluate_model(
    model: nn.Module,
    data: ImageSet,
    index: pd.DataFrame,
    device: torch.device,
    runtime: Runtime | None = None,
    sets: tuple[str, ...] = tuple(EVALUATION_SETS),
    label: str = "evaluate",
    side: int | None = None,
    crop: float = 1.0,
) -> tuple[dict, dict, dict]:
    """Per evaluation set (of `sets`): summary metrics, per-class accuracy, and (actual,
    predicted) class-name pairs for a confusion matrix. Each image is predicted once, the
    sets are taken from that one pass. `side`, `crop`: the validation image (predict)."""
    runtime = runtime or Runtime()
    masks = {name: EVALUATION_SETS[name](index).to_numpy() for name in sets}
    masks = {name: mask for name, mask in masks.items() if mask.any()}
    if not masks:
        return {}, {}, {}
    needed = np.logical_or.reduce(list(masks.values()))
    model.to(device, memory_format=runtime.memory_format)
    # The whole store on the GPU when it fits: each set is then gathered there.
    data = place(data, device, runtime.data_on_device)
    subset = data.subset(needed)
    logits, _ = predict(model, subset, device, runtime=runtime, label=label, side=side, crop=crop)
    labels = subset.labels.cpu()
    losses = nn.functional.cross_entropy(logits.double(), labels, reduction="none").numpy()
    predicted_all, actual_all = logits.argmax(1).numpy(), labels.numpy()
    positions = np.flatnonzero(needed)
    summary, per_class, pairs = {}, {}, {}
    for name, mask in masks.items():
        rows = np.isin(positions, np.flatnonzero(mask))
        predicted, actual = predicted_all[rows], actual_all[rows]
        summary[name] = {
            "accuracy": float((predicted == actual).mean()),
            "loss": float(losses[rows].mean()),
            "images": int(len(actual)),
        }
        per_class[name] = {
            ENGLISH[cls]: float((predicted[actual == cls] == cls).mean())
            for cls in np.unique(actual)
        }
        pairs[name] = [
            {"actual": ENGLISH[a], "predicted": ENGLISH[p]}
            for a, p in zip(actual, predicted, strict=True)
        ]
    return summary, per_class, pairs
