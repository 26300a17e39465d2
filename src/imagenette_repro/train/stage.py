"""What both train stages share (train_custom, finetune_googlenet): their subsets of the
array store, and one fit-then-save that writes the curves, the checkpoints and the model
with its record."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import torch
from dvclive import Live

from .. import distributed
from ..data.batches import ImageSet, load_store
from ..data.classes import ENGLISH, WNIDS
from ..models.record import ModelRecord, save_model
from ..params import ParamsError
from ..runtime import Runtime
from ..stage_io import file_sha256, fingerprint
from .loop import TrainConfig, fit


def code_fingerprint() -> str:
    """A hash of the code this stage runs: its script and the package's modules it has
    imported (as dvc.yaml's deps list them). An edit to other modules, comparison.py say,
    leaves a checkpoint resumable."""
    package = Path(__file__).parents[1]
    loaded = {
        Path(module.__file__)
        for module in list(sys.modules.values())
        if getattr(module, "__file__", None) and Path(module.__file__).is_relative_to(package)
    }
    files = [*sorted(loaded), Path(sys.argv[0])]
    return fingerprint(*(file_sha256(path) for path in files if path.is_file()))


def load_training_data(
    store_dir: Path,
    split_index: Path,
    batch_size_key: str,
    batch_size: int,
    store: tuple[ImageSet, pd.DataFrame] | None = None,
):
    """The training and validation subsets of the array store in `store_dir` with the
    subsets of `split_index` (`store`: both already loaded), and a fingerprint of the data;
    the batch size is checked against the training set."""
    data, index = store if store is not None else load_store(store_dir, split_index)
    train = data.subset((index["subset"] == "train").to_numpy())
    valid = data.subset((index["subset"] == "valid").to_numpy())
    if batch_size > len(train):
        raise ParamsError(
            f"params.yaml: '{batch_size_key}' is {batch_size}, more than the "
            f"{len(train)} training images"
        )
    data_hash = fingerprint(
        file_sha256(store_dir / "images.npy"),
        file_sha256(store_dir / "index.csv"),
        file_sha256(split_index),
    )
    return train, valid, data_hash


def train_and_save(
    model: torch.nn.Module,
    train: ImageSet,
    valid: ImageSet,
    config: TrainConfig,
    device: torch.device,
    *,
    label: str,
    live_dir: Path,
    checkpoint: Path,
    model_path: Path,
    fingerprint_parts: tuple,
    meta: dict,
    new_layer: list[torch.nn.Parameter] | None = None,
    runtime: Runtime | None = None,
) -> None:
    """What both train stages do: fit with dvclive curves and a checkpoint per epoch, then
    save the kept weights (config.keep) with everything needed to use them (meta plus
    common fields)."""
    image_size = train.images.shape[1]
    input_size = config.side or image_size
    world = distributed.launched_world()
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    # Under torchrun every process trains; only the main one writes curves and files.
    live_context = (
        Live(str(live_dir), dvcyaml=False, save_dvc_exp=False) if world.is_main else nullcontext()
    )
    with live_context as live:
        runtime = runtime or Runtime()
        log_params = live.log_params if live is not None else lambda _: None
        log_params(
            {
                "label": label,
                "input_size": input_size,
                "image_size": image_size,
                "val_crop": config.val_crop,
                "device": str(device),
                "precision": runtime.precision,
                "channels_last": runtime.channels_last,
                "compile": runtime.compile,
                "processes": world.size,
            }
        )
        result = fit(
            model,
            train,
            valid,
            config,
            device,
            live,
            checkpoint,
            # What the numbers depend on: the step's precision, layout and compilation
            # too (a resume repeats the run bit for bit only with the same ones).
            fingerprint(
                config,
                *fingerprint_parts,
                world.size,
                (runtime.precision, runtime.channels_last, runtime.compile),
                code_fingerprint(),
            ),
            new_layer=new_layer,
            label=label,
            runtime=runtime,
            world=world,
        )
        if live is not None:
            live.log_metric("kept_epoch", result.kept_epoch, plot=False)
            live.log_metric("epochs_run", result.epochs_run, plot=False)
            live.log_metric("best/valid_loss_epoch", result.best_loss_epoch, plot=False)
            live.log_metric("best/valid_accuracy_epoch", result.best_accuracy_epoch, plot=False)
    try:
        if world.is_main:
            _save_kept(
                model,
                result,
                config,
                model_path,
                {
                    **meta,
                    "precision": runtime.precision,
                    "image_size": image_size,
                    "val_crop": config.val_crop,
                },
                input_size,
            )
    finally:  # every process leaves the group together, after the save (or its error)
        distributed.finish(world)


def _save_kept(model, result, config, model_path: Path, meta: dict, input_size: int) -> None:
    model.load_state_dict(result.kept_state)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    record = ModelRecord(
        **meta,
        input_size=input_size,
        classes=list(WNIDS),
        class_names=list(ENGLISH),
        kept_weights=result.kept,
        kept_epoch=result.kept_epoch,
        epochs_run=result.epochs_run,
        stopped_early=result.stopped_early,
        best_valid_loss_epoch=result.best_loss_epoch,
        best_valid_accuracy_epoch=result.best_accuracy_epoch,
        train_config=vars(config),
    )
    save_model(model_path, model, record)
