"""A trained model's batch-norm statistics, finalised after training as MATLAB R2018b does
it: one pass over the training images sets each BatchNorm's mean and variance, instead of
the running averages kept during training (R2018b had no option; later releases call this
`BatchNormalizationStatistics: "population"`). The val folder is measured with both, so
that the difference is what this one departure costs.

    python -m imagenette_repro.inference.finalise_bn [--copy DIR] [--out FILE]

DIR is the repository copy the model was trained in (its data/prepared store,
data/split/index.csv and data/models/custom.pt). The pass averages per-batch statistics
with equal weights, as torch's `swa_utils.update_bn` does, in the model's training batch
size, on the images as validation sees them (no augmentation), on the CPU in the precision
`runtime.precision: auto` picks; how MATLAB combines its batches, and whether its pass
augments, is not documented, so this is R2018b's step approximately. Prints and writes
one JSON record."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ..data.batches import ImageSet, batches, centre_view, load_store, to_input
from ..errors import UserError
from ..machine import machine_info
from ..models.saved import load_model
from ..progress import Progress
from ..runtime import Runtime, auto_precision
from ..stage_io import file_sha256, write_json
from .evaluation import EVALUATION_SETS, VAL_FOLDER_SETS, evaluate_model


def training_inputs(
    data: ImageSet, batch_size: int, device: torch.device, runtime: Runtime, side: int
) -> Iterator[torch.Tensor]:
    """The training images in order, as the network sees them at validation."""
    progress = Progress("batch-norm pass", len(data))
    for images, _ in batches(data, batch_size, None, drop_last=False, device=device):
        yield centre_view(to_input(images, device, runtime.channels_last), side)
        progress.update(len(images))
    progress.finish()


def finalise_batch_norm(
    model: nn.Module,
    data: ImageSet,
    batch_size: int,
    device: torch.device,
    runtime: Runtime,
    side: int,
) -> int:
    """Replace every BatchNorm's running statistics by those of one pass over `data`; the
    model is left in eval mode. Returns the number of BatchNorm layers finalised.

    torch's `update_bn` without its `model.train()`: only the BatchNorm layers go to
    training mode (batch statistics, accumulated with momentum None: an equal-weight
    average over the batches), so a Dropout before a BatchNorm stays off as at
    prediction."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return 0
    model.to(device, memory_format=runtime.memory_format).eval()
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    with torch.no_grad(), runtime.autocast(device):
        for inputs in training_inputs(data, batch_size, device, runtime, side):
            model(inputs)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    model.eval()
    return len(layers)


def copy_commit(copy: Path) -> str | None:
    result = subprocess.run(
        ["git", "-C", str(copy), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return result.stdout.strip() or None


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copy", type=Path, default=Path("."))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    store, index = args.copy / "data" / "prepared", args.copy / "data" / "split" / "index.csv"
    model_path = args.copy / "data" / "models" / "custom.pt"
    for path in (store / "images.npy", index, model_path):
        if not path.is_file():
            raise UserError(
                f"{path} is missing: --copy must be a repository copy whose pipeline has "
                "run (dvc repro or dvc exp run)"
            )
    device = torch.device("cpu")
    runtime = Runtime(precision=auto_precision(device))
    data, rows = load_store(store, index)
    model, record = load_model(model_path)
    side, batch_size = record.input_size, record.train_config["batch_size"]

    def measure(label: str) -> dict:
        summary, _, _ = evaluate_model(
            model, data, rows, device, runtime, VAL_FOLDER_SETS, label, side, record.val_crop
        )
        return summary

    running = measure("val folder, running statistics")
    train = data.subset(EVALUATION_SETS["train"](rows).to_numpy())
    layers = finalise_batch_norm(model, train, batch_size, device, runtime, side)
    finalised = measure("val folder, finalised statistics")
    result = {
        "command": "python -m imagenette_repro.inference.finalise_bn " + " ".join(argv),
        "commit": copy_commit(args.copy),  # of the copy that trained the model
        "measured_by_commit": copy_commit(Path(__file__).resolve().parents[3]),
        "model_sha256": file_sha256(model_path),
        "network": record.network,
        "input_size": side,
        "kept_epoch": record.kept_epoch,
        "batch_norm_layers": layers,
        "statistics_images": len(train),
        "statistics_batch_size": batch_size,
        "precision": runtime.precision,
        "machine": machine_info(device),
        "running": running,
        "finalised": finalised,
        "difference": {
            name: finalised[name]["accuracy"] - running[name]["accuracy"] for name in running
        },
    }
    print(json.dumps(result["difference"], indent=2))
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
