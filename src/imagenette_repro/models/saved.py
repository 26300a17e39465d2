"""Trained models read back from data/models/*.pt, whatever network made them: the
report's custom CNNs, timm's recipes, and the fine-tuned pretrained networks. Apart from
networks.py so that train_custom does not depend on the pretrained networks' code."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .networks import build_custom_network, build_timm_network
from .pretrained import imagenet_network, replace_classifier
from .record import ModelRecord, read_saved


def load_model(path: Path) -> tuple[nn.Module, ModelRecord]:
    """A model saved by model_record.save_model, in eval mode, and its record."""
    state, record = read_saved(path)
    classes = len(record.classes)
    if record.kind == "custom":
        model = build_custom_network(
            record.layers, record.input_size, classes, "torch_default", record.network
        )
    elif record.kind == "timm":
        # The input scaling comes with the weights (Normalize's mean and std buffers).
        model = build_timm_network(
            record.timm_model, record.stem_stride, classes, record.model_args
        )
    else:  # a fine-tuned pretrained network (pretrained.py)
        model = imagenet_network(record.model, None)
        if record.model == "googlenet":
            model[1].transform_input = record.transform_input
        replace_classifier(model, record.model, classes)
    model.load_state_dict(state)
    return model.eval(), record
