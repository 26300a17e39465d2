import hashlib

import pytest
import torch
from torchvision.models import googlenet

from imagenette_repro.models import (
    WeightsError,
    build_googlenet,
    freeze_googlenet,
    load_model,
    new_layer_parameters,
    save_model,
)


def make_weights_file(folder, name="googlenet"):
    """A GoogLeNet state dict shaped like torchvision's IMAGENET1K_V1 file (aux heads
    included), named <name>-<sha256 prefix>.pth as torchvision names its files."""
    torch.manual_seed(0)
    state = googlenet(weights=None, aux_logits=True, init_weights=True).state_dict()
    tmp = folder / "weights.pth"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / f"{name}-{digest[:8]}.pth"
    tmp.rename(path)
    return path, state


def test_local_weights_file_is_loaded_and_the_classifier_replaced(tmp_path):
    path, state = make_weights_file(tmp_path)
    model, info = build_googlenet(str(path))
    assert info["pretrained"] and info["weights"] == f"file:{path.name}"
    net = model[1]
    assert torch.equal(net.conv1.conv.weight, state["conv1.conv.weight"])
    assert net.fc.out_features == 10 and net.aux1 is None and net.transform_input
    model.eval()
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10)


def test_weights_file_whose_hash_does_not_match_its_name_is_refused(tmp_path):
    path, _ = make_weights_file(tmp_path)
    wrong = path.with_name("googlenet-00000000.pth")
    path.rename(wrong)
    with pytest.raises(WeightsError, match="sha256 starts with"):
        build_googlenet(str(wrong))


def test_imagenet_weights_come_through_torchs_cache(tmp_path, monkeypatch):
    # torch.hub looks in $TORCH_HOME/hub/checkpoints before it downloads anything.
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    _, state = make_weights_file(tmp_path)
    torch.save(state, cache / "googlenet-1378be20.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model, info = build_googlenet("imagenet")
    assert info == {
        "weights": "imagenet",
        "pretrained": True,
        "url": "https://download.pytorch.org/models/googlenet-1378be20.pth",
    }
    assert torch.equal(model[1].conv1.conv.weight, state["conv1.conv.weight"])


def test_none_is_random_init_and_not_pretrained():
    _, info = build_googlenet("none")
    assert info == {"weights": "none", "pretrained": False}


def test_bad_weights_values_are_named(tmp_path):
    with pytest.raises(WeightsError, match="googlenet.weights.*allowed: imagenet, none"):
        build_googlenet(str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="junk.pth: not a torch state dict"):
        build_googlenet(str(tmp_path / "junk.pth"))
    torch.save({"conv1.conv.weight": torch.zeros(1)}, tmp_path / "partial.pth")
    with pytest.raises(WeightsError, match="does not fit"):
        build_googlenet(str(tmp_path / "partial.pth"))


def test_freezing_stops_at_the_named_layer():
    model, _ = build_googlenet("none")
    frozen = freeze_googlenet(model, "maxpool2")
    assert frozen == ["conv1", "maxpool1", "conv2", "conv3", "maxpool2"]
    assert not any(p.requires_grad for p in model[1].conv3.parameters())
    assert all(p.requires_grad for p in model[1].inception3a.parameters())
    assert all(p.requires_grad for p in new_layer_parameters(model))
    with pytest.raises(WeightsError, match="'conv9' is not a GoogLeNet layer"):
        freeze_googlenet(model, "conv9")


def test_saved_model_reloads_with_the_same_predictions(tmp_path):
    model, info = build_googlenet("none")
    model.eval()
    meta = {
        "kind": "googlenet",
        "network": "googlenet",
        "input_size": 32,
        "transform_input": False,
        "classes": list("abcdefghij"),
        **info,
    }
    save_model(tmp_path / "model.pt", model, meta)
    loaded, loaded_meta = load_model(tmp_path / "model.pt")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded_meta == meta
