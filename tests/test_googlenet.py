import hashlib

import pytest
import torch
from torchvision.models import googlenet

from imagenette_repro.models.pretrained import (
    WeightsError,
    check_hash_in_name,
    classifier,
    freeze_through,
    imagenet_network,
    read_state,
    replace_classifier,
    weights_source,
)
from imagenette_repro.models.record import save_model
from imagenette_repro.models.saved import load_model

from .conftest import model_record


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
    found, source = weights_source("googlenet", str(path))
    assert found == path and source == f"file:{path.name}"
    model = imagenet_network("googlenet", read_state(path))
    net = model[1]
    assert torch.equal(net.conv1.conv.weight, state["conv1.conv.weight"])
    assert net.fc.out_features == 1000 and net.aux1 is None and net.transform_input
    replace_classifier(model, "googlenet")
    assert classifier(model, "googlenet").out_features == 10
    model.eval()
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10)


def test_weights_file_whose_hash_does_not_match_its_name_is_refused(tmp_path):
    path, _ = make_weights_file(tmp_path)
    wrong = path.with_name("googlenet-00000000.pth")
    path.rename(wrong)
    digest = hashlib.sha256(wrong.read_bytes()).hexdigest()
    with pytest.raises(WeightsError, match="sha256 starts with"):
        check_hash_in_name(wrong, digest)


def test_imagenet_weights_come_through_torchs_cache(tmp_path, monkeypatch):
    # torch.hub looks in $TORCH_HOME/hub/checkpoints before it downloads anything (and
    # checks the hash only of what it downloads: the pretrained stage checks the file).
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    _, state = make_weights_file(tmp_path)
    torch.save(state, cache / "googlenet-1378be20.pth")
    path, source = weights_source("googlenet", "imagenet")
    assert path == cache / "googlenet-1378be20.pth"
    assert source == "https://download.pytorch.org/models/googlenet-1378be20.pth"
    with pytest.raises(WeightsError, match="its name says 1378be20"):  # not the real file
        check_hash_in_name(path, hashlib.sha256(path.read_bytes()).hexdigest())


def test_none_is_random_init_and_not_pretrained():
    assert weights_source("googlenet", "none") == (None, "none")
    assert not imagenet_network("googlenet", None)[1].transform_input


def test_bad_weights_values_are_named(tmp_path):
    with pytest.raises(WeightsError, match="googlenet.weights.*allowed: imagenet, none"):
        weights_source("googlenet", str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsError, match="googlenet.model: 'vgg'"):
        weights_source("vgg", "none")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="junk.pth: not a torch state dict"):
        read_state(tmp_path / "junk.pth")
    with pytest.raises(WeightsError, match="does not fit"):
        imagenet_network("googlenet", {"conv1.conv.weight": torch.zeros(1)})


def test_freezing_stops_at_the_named_layer():
    model = imagenet_network("googlenet", None)
    replace_classifier(model, "googlenet")
    frozen = freeze_through(model, "maxpool2")
    assert frozen == ["conv1", "maxpool1", "conv2", "conv3", "maxpool2"]
    assert not any(p.requires_grad for p in model[1].conv3.parameters())
    assert all(p.requires_grad for p in model[1].inception3a.parameters())
    assert all(p.requires_grad for p in classifier(model, "googlenet").parameters())
    with pytest.raises(WeightsError, match="'conv9' is not a layer of this network"):
        freeze_through(model, "conv9")


def test_saved_model_reloads_with_the_same_predictions(tmp_path):
    path, _ = make_weights_file(tmp_path)
    model = imagenet_network("googlenet", read_state(path))
    replace_classifier(model, "googlenet")
    model.eval()
    record = model_record(
        kind="googlenet",
        network="googlenet",
        model="googlenet",
        input_size=32,
        transform_input=True,
        classes=list("abcdefghij"),
    )
    save_model(tmp_path / "model.pt", model, record)
    loaded, loaded_record = load_model(tmp_path / "model.pt")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded_record == record and loaded[1].transform_input
