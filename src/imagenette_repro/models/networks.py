"""Torch modules: the report's custom CNNs (from their layer lists) and timm's networks
for the modern recipes (the pretrained networks: pretrained.py; a trained model's file:
record.py and saved.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..params import timm_model_args
from .architecture import Layer, parse_architecture

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std on images in [0, 1], inside the model so a saved model is whole.

    `mean` is (3, 1, 1) per channel, or (3, H, W) for MATLAB's "zerocenter", which
    subtracts the training set's mean image.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone().float())
        self.register_buffer("std", std.clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def init_weights(module: nn.Module, init: str) -> None:
    if init == "torch_default":
        return
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            if init == "glorot":
                nn.init.xavier_uniform_(layer.weight)
            else:  # normal_0.01
                nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


def layers_to_modules(layers: list[Layer], input_size: int) -> list[nn.Module]:
    """The report's layers as torch modules: BN after every conv and before its ReLU,
    ReLU after every hidden fully connected layer, "same" padding, pooling with stride 2."""
    modules: list[nn.Module] = []
    channels, side, features = 3, input_size, None
    fc_layers = [layer for layer in layers if layer.kind == "fc"]
    for layer in layers:
        if layer.kind == "conv":
            modules += [
                nn.Conv2d(channels, layer.channels, layer.size, padding="same"),
                nn.BatchNorm2d(layer.channels),
                nn.ReLU(inplace=True),
            ]
            channels = layer.channels
        elif layer.kind in ("maxpool", "avgpool"):
            pool = nn.MaxPool2d if layer.kind == "maxpool" else nn.AvgPool2d
            modules.append(pool(layer.size, stride=2))
            side = (side - layer.size) // 2 + 1
        elif layer.kind == "dropout":
            modules.append(nn.Dropout(layer.rate))
        elif layer.kind == "fc":
            if features is None:
                modules.append(nn.Flatten())
                features = channels * side * side
            modules.append(nn.Linear(features, layer.size))
            features = layer.size
            if layer is not fc_layers[-1]:
                modules.append(nn.ReLU(inplace=True))
        # input, softmax, output: softmax and the loss live in nn.CrossEntropyLoss
    return modules


def build_custom_network(
    layer_strings: list[str],
    input_size: int,
    num_classes: int = 10,
    init: str = "glorot",
    name: str = "network",
) -> nn.Sequential:
    """A custom network from its layer list; input: (N, 3, S, S) images in [0, 1]."""
    layers = parse_architecture(layer_strings, input_size, num_classes, name)
    normalize = Normalize(torch.zeros(3, input_size, input_size), torch.ones(3, 1, 1))
    body = nn.Sequential(*layers_to_modules(layers, input_size))
    init_weights(body, init)
    return nn.Sequential(normalize, body)


STEM_STRIDES = (1, 2, 4)
# A recipe's input_scaling: what Normalize does to images in [0, 1] (mean, std).
INPUT_SCALINGS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # the images as they are (fastai's record)
}


def build_timm_network(
    name: str,
    stem_stride: int = 4,
    num_classes: int = 10,
    model_args: dict[str, Any] | None = None,
    input_scaling: str = "imagenet",
) -> nn.Sequential:
    """A timm model from random init (`timm.create_model(name, pretrained=False,
    **model_args)`), for images in [0, 1]: Normalize inside the model scales them by
    `input_scaling` (imagenet: ImageNet's mean and std; none: unchanged). Its mean and std
    are buffers of the state dict, so a saved model carries its own scaling.

    stem_stride adapts a ResNet-family stem (`conv1`, `maxpool`) to small inputs: 4 keeps
    the model's own (a stride-2 convolution, then a stride-2 max-pool, or with an
    `aa_layer` a stride-1 max-pool and a stride-2 blur), 2 drops the pool, 1 also the
    convolution's stride (as CIFAR ResNets). Same weights either way.
    """
    import timm

    if not timm.is_model(name):
        raise ValueError(f"{name!r} is not a timm model (see timm.list_models())")
    if stem_stride not in STEM_STRIDES:
        raise ValueError(f"stem_stride is {stem_stride!r}; allowed: 1, 2, 4")
    if input_scaling not in INPUT_SCALINGS:
        raise ValueError(
            f"input_scaling is {input_scaling!r}; allowed: {', '.join(INPUT_SCALINGS)}"
        )
    try:
        net = timm.create_model(
            name, pretrained=False, num_classes=num_classes, **timm_model_args(model_args or {})
        )
    except (TypeError, KeyError, AssertionError) as err:
        raise ValueError(f"model_args {model_args} do not fit timm's {name}: {err}") from None
    if stem_stride < 4:
        if not (hasattr(net, "conv1") and isinstance(getattr(net, "maxpool", None), nn.Module)):
            raise ValueError(
                f"{name!r} has no ResNet stem (conv1, maxpool) to adapt; use stem_stride 4"
            )
        net.maxpool = nn.Identity()
    if stem_stride < 2:
        first = next(m for m in net.conv1.modules() if isinstance(m, nn.Conv2d))
        first.stride = (1, 1)
    mean, std = INPUT_SCALINGS[input_scaling]
    normalize = Normalize(torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1))
    return nn.Sequential(normalize, net)
