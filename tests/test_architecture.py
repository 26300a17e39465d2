import pytest
import torch

from imagenette_repro.models.architecture import ArchitectureError, parse_architecture, parse_layer
from imagenette_repro.models.networks import build_custom_network


def test_parse_layer_reads_the_report_notation():
    assert parse_layer("Conv, 3x3, 64").kind == "conv"
    assert parse_layer("Conv, 1x1, 128").size == 1
    assert parse_layer("Conv, 1x1, 128").channels == 128
    assert parse_layer("Dropout, 0.35").rate == 0.35
    assert parse_layer("FullyConnected, 768").size == 768
    assert parse_layer("AvgPool, 2x2").kind == "avgpool"
    assert parse_layer("ImageInput, 256x256").size == 256


@pytest.mark.parametrize(
    "text",
    [
        "Conv, 3x3",
        "Conv 3x3, 64",
        "LSTM, 10",
        "Dropout, 1.5",
        "MaxPool, 2x3",
        "FullyConnected, many",
        "",
    ],
)
def test_bad_layer_strings_are_rejected_with_the_string(text):
    with pytest.raises(ArchitectureError, match="layer|square|rate"):
        parse_layer(text)


def test_every_report_architecture_builds_and_gives_10_logits(repo_params):
    assert len(repo_params["architectures"]) == 12
    for name, layers in repo_params["architectures"].items():
        for size in (224, 64):
            model = build_custom_network(layers, size, init="torch_default", name=name).eval()
            with torch.no_grad():
                logits = model(torch.rand(1, 3, size, size))
            assert logits.shape == (1, 10), name


def test_batch_norm_follows_every_convolution_before_its_relu(repo_params):
    model = build_custom_network(repo_params["architectures"]["network_74_2675"], 64)
    body = list(model[1])
    convs = [i for i, m in enumerate(body) if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 15
    for i in convs:
        assert isinstance(body[i + 1], torch.nn.BatchNorm2d)
        assert isinstance(body[i + 2], torch.nn.ReLU)
        assert body[i].padding == "same"
    linears = [i for i, m in enumerate(body) if isinstance(m, torch.nn.Linear)]
    assert [body[i].out_features for i in linears] == [768, 768, 10]
    assert isinstance(body[linears[0] + 1], torch.nn.ReLU)  # hidden FC layers get a ReLU
    assert body[-1] is body[linears[-1]]  # the last FC gives the logits


def test_input_too_small_for_the_pooling_is_rejected(repo_params):
    layers = repo_params["architectures"]["network_84_8153"]  # five poolings
    parse_architecture(layers, 32)
    with pytest.raises(ArchitectureError, match="input size 16 is too small"):
        parse_architecture(layers, 16)


def test_last_fully_connected_layer_must_match_the_classes():
    with pytest.raises(ArchitectureError, match="10 outputs"):
        parse_architecture(["ImageInput, 32x32", "Conv, 3x3, 8", "FullyConnected, 7"], 32)
    with pytest.raises(ArchitectureError, match="must start"):
        parse_architecture(["Conv, 3x3, 8", "FullyConnected, 10"], 32)
