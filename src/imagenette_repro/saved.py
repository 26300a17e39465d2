"""Trained models read back from data/models/*.pt, whatever network made them: the
report's custom CNNs, timm's recipes, and the fine-tuned pretrained networks. Apart from
models.py so that train_custom does not depend on the pretrained networks' code."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .models import build_custom_network, build_timm_network
from .pretrained import imagenet_network, replace_classifier


def load_model(path: Path) -> tuple[nn.Module, dict]:
    """A model saved by save_model, in eval mode, and its metadata."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    meta = saved["meta"]
    if meta["kind"] == "custom":
        model = build_custom_network(
            meta["layers"],
            meta["input_size"],
            len(meta["classes"]),
            "torch_default",
            meta["network"],
        )
    elif meta["kind"] == "timm":
        model = build_timm_network(meta["timm_model"], meta["stem_stride"], len(meta["classes"]))
    else:  # a fine-tuned pretrained network (pretrained.py)
        name = meta.get("model", "googlenet")
        model = imagenet_network(name, None)
        if name == "googlenet":
            model[1].transform_input = meta["transform_input"]
        replace_classifier(model, name, len(meta["classes"]))
    model.load_state_dict(saved["state_dict"])
    return model.eval(), meta
