"""Torch modules: the report's custom CNNs (from their layer lists) and GoogLeNet."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from torch import nn

from .architecture import Layer, parse_architecture
from .errors import UserError
from .files import replacing

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GOOGLENET_URL = "https://download.pytorch.org/models/googlenet-1378be20.pth"
GOOGLENET_DROPOUT = 0.4  # the report's GoogLeNet table (torchvision's default is 0.2)


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


def _init_weights(module: nn.Module, init: str) -> None:
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
    _init_weights(body, init)
    return nn.Sequential(normalize, body)


STEM_STRIDES = (1, 2, 4)


def build_timm_network(name: str, stem_stride: int = 4, num_classes: int = 10) -> nn.Sequential:
    """A timm model from random init (`timm.create_model(name, pretrained=False)`), for
    images in [0, 1] (ImageNet's mean and std, inside the model).

    stem_stride adapts a ResNet-family stem (`conv1`, `maxpool`) to small inputs: 4 keeps
    the model's own (a stride-2 convolution, then a stride-2 max-pool), 2 drops the
    max-pool, 1 also the convolution's stride (as CIFAR ResNets). Same weights either way.
    """
    import timm

    if not timm.is_model(name):
        raise ValueError(f"{name!r} is not a timm model (see timm.list_models())")
    if stem_stride not in STEM_STRIDES:
        raise ValueError(f"stem_stride is {stem_stride!r}; allowed: 1, 2, 4")
    net = timm.create_model(name, pretrained=False, num_classes=num_classes)
    if stem_stride < 4:
        if not isinstance(getattr(net, "maxpool", None), nn.MaxPool2d):
            raise ValueError(
                f"{name!r} has no ResNet stem (conv1, maxpool) to adapt; use stem_stride 4"
            )
        net.maxpool = nn.Identity()
    if stem_stride < 2:
        first = next(m for m in net.conv1.modules() if isinstance(m, nn.Conv2d))
        first.stride = (1, 1)
    normalize = Normalize(
        torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    )
    return nn.Sequential(normalize, net)


class WeightsError(UserError, RuntimeError):
    """Pretrained weights that cannot be had or do not fit."""


def _check_hash_in_name(path: Path) -> None:
    # torchvision names its files <name>-<first 8+ hex of sha256>.pth; check it as torch.hub does.
    match = re.search(r"-([a-f0-9]{8,})\.", path.name)
    if not match:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(match.group(1)):
        raise WeightsError(
            f"{path}: sha256 starts with {digest[: len(match.group(1))]}, but its name says "
            f"{match.group(1)}: the file is corrupt or not the one named"
        )


def build_googlenet(weights: str, num_classes: int = 10) -> tuple[nn.Module, dict]:
    """torchvision's GoogLeNet with its 1000-class classifier replaced by a new one.

    weights: "imagenet" (torchvision's IMAGENET1K_V1, through torch's cache), a path to a
    local state dict of the same model, or "none" (random init). Returns the model
    (input: images in [0, 1]) and a dict saying which weights were used.
    """
    from torchvision.models import GoogLeNet_Weights, googlenet

    if weights == "none":
        net = googlenet(
            weights=None,
            aux_logits=False,
            init_weights=True,
            transform_input=False,
            dropout=GOOGLENET_DROPOUT,
        )
        info = {"weights": "none", "pretrained": False}
    elif weights == "imagenet":
        try:
            net = googlenet(weights=GoogLeNet_Weights.IMAGENET1K_V1, dropout=GOOGLENET_DROPOUT)
        except (OSError, RuntimeError) as err:
            raise WeightsError(
                f"could not get GoogLeNet's ImageNet weights from {GOOGLENET_URL}: {err}. "
                f"Offline? Download that file elsewhere and set googlenet.weights in "
                f"params.yaml to its local path"
            ) from None
        info = {"weights": "imagenet", "pretrained": True, "url": GOOGLENET_URL}
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(
                f"googlenet.weights: {weights!r} is not a file; allowed: imagenet, none, "
                f"or the path of a GoogLeNet state dict (.pth)"
            )
        _check_hash_in_name(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for a bad file
            raise WeightsError(f"{path}: not a torch state dict: {err}") from None
        has_aux = any(key.startswith("aux1.") for key in state)
        net = googlenet(
            weights=None,
            aux_logits=has_aux,
            init_weights=False,
            transform_input=True,
            dropout=GOOGLENET_DROPOUT,
        )
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise WeightsError(f"{path}: does not fit torchvision's GoogLeNet: {err}") from None
        net.aux_logits, net.aux1, net.aux2 = False, None, None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        info = {"weights": f"file:{path.name}", "pretrained": True, "sha256": digest}
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    _init_weights(net.fc, "glorot")
    normalize = Normalize(
        torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    )
    return nn.Sequential(normalize, net), info


def freeze_googlenet(model: nn.Sequential, through: str | None) -> list[str]:
    """Freeze GoogLeNet's children up to and including `through`; return their names."""
    if through is None:
        return []
    net = model[1]
    names = [name for name, _ in net.named_children()]
    if through not in names:
        raise WeightsError(
            f"googlenet.freeze_through: {through!r} is not a GoogLeNet layer; "
            f"allowed: null, {', '.join(names)}"
        )
    frozen = names[: names.index(through) + 1]
    for name in frozen:
        for param in getattr(net, name).parameters():
            param.requires_grad_(False)
    return frozen


def new_layer_parameters(model: nn.Sequential) -> list[nn.Parameter]:
    """The parameters of GoogLeNet's new classifier (trained at a higher learning rate)."""
    return list(model[1].fc.parameters())


def save_model(path: Path, model: nn.Module, meta: dict) -> None:
    """Save weights with everything needed to rebuild and use the model (atomically)."""
    path = Path(path)
    with replacing(path) as tmp:
        torch.save({"meta": meta, "state_dict": model.state_dict()}, tmp)


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
    else:
        from torchvision.models import googlenet

        net = googlenet(
            weights=None,
            aux_logits=False,
            init_weights=False,
            transform_input=meta["transform_input"],
            dropout=GOOGLENET_DROPOUT,
        )
        net.fc = nn.Linear(net.fc.in_features, len(meta["classes"]))
        model = nn.Sequential(Normalize(torch.zeros(3, 1, 1), torch.ones(3, 1, 1)), net)
    model.load_state_dict(saved["state_dict"])
    return model.eval(), meta
