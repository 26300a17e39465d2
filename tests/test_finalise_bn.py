"""Batch-norm statistics finalised over the training images (MATLAB R2018b's way), and the
command that measures a trained model with both kinds of statistics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from imagenette_repro.data.batches import ImageSet, centre_view, to_input
from imagenette_repro.errors import UserError
from imagenette_repro.inference.evaluation import VAL_FOLDER_SETS, evaluate_model
from imagenette_repro.inference.finalise_bn import finalise_batch_norm, main
from imagenette_repro.models.networks import build_custom_network
from imagenette_repro.models.record import save_model
from imagenette_repro.models.saved import load_model
from imagenette_repro.runtime import Runtime, auto_precision

from .conftest import model_record

LAYERS = ["ImageInput, 16x16", "Conv, 3x3, 4", "MaxPool, 2x2", "FullyConnected, 10"]
# A Dropout before a convolution and its batch norm (as in some of the report's rows).
DROPOUT_FIRST = ["ImageInput, 16x16", "Conv, 3x3, 4", "Dropout, 0.5", "Conv, 3x3, 4"]
DROPOUT_FIRST += ["MaxPool, 2x2", "FullyConnected, 10"]


def tiny_network(layers: list[str] = LAYERS) -> nn.Module:
    torch.manual_seed(0)
    model = build_custom_network(layers, 16, name="tiny").eval()
    for module in model.modules():  # statistics far from any the data gives
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.fill_(5.0)
            module.running_var.fill_(9.0)
            module.momentum = 0.3
    return model


def images(n: int, seed: int = 0) -> ImageSet:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (n, 16, 16, 3), dtype=torch.uint8, generator=generator)
    return ImageSet(pixels, torch.arange(n) % 10)


def inputs_of(model: nn.Module, layer: nn.Module, data: ImageSet, batch: int) -> list:
    """What `layer` sees, batch by batch, with the model in eval mode."""
    seen = []
    hook = layer.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    with torch.no_grad():
        for i in range(0, len(data), batch):
            model(centre_view(to_input(data.images[i : i + batch], torch.device("cpu")), 16))
    hook.remove()
    return seen


def test_the_statistics_are_the_mean_over_the_pass_and_the_model_is_left_in_eval_mode():
    model, data = tiny_network(), images(24)
    (bn,) = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    # No batch norm before it: in eval mode it sees what it sees in the pass.
    batches = inputs_of(model, bn, data, 8)
    means = torch.stack([b.mean((0, 2, 3)) for b in batches])
    variances = torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches])

    layers = finalise_batch_norm(model, data, 8, torch.device("cpu"), Runtime(), 16)

    assert layers == 1
    assert torch.allclose(bn.running_mean, means.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, variances.mean(0), atol=1e-5)
    assert not model.training and bn.momentum == 0.3


def test_a_dropout_before_a_batch_norm_stays_off_in_the_pass():
    model, data = tiny_network(DROPOUT_FIRST), images(16)
    first, second = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    finalise_batch_norm(model, data, 16, torch.device("cpu"), Runtime(), 16)
    # With the first layer's statistics final, the second sees (one batch, dropout off):
    (seen,) = inputs_of(model, second, data, 16)
    assert torch.allclose(second.running_mean, seen.mean((0, 2, 3)), atol=1e-3)
    assert torch.allclose(second.running_var, seen.var((0, 2, 3)), rtol=1e-3)
    assert not first.training and not model.training


def test_a_model_without_batch_norm_is_left_alone():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16 * 3, 10)).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert finalise_batch_norm(model, images(8), 4, torch.device("cpu"), Runtime(), 16) == 0
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def make_copy(root, train: int = 32, val: int = 16) -> None:
    """A repository copy whose pipeline has run: its array store, split and model."""
    n = train + val
    data = images(n, seed=1)
    (root / "data" / "prepared").mkdir(parents=True)
    (root / "data" / "split").mkdir()
    (root / "data" / "models").mkdir()
    np.save(root / "data" / "prepared" / "images.npy", data.images.numpy())
    paths = [f"img{i}.JPEG" for i in range(n)]
    pd.DataFrame(
        {
            "path": paths,
            "label": data.labels.numpy(),
            "folder": ["train"] * train + ["val"] * val,
            "imagenet_val": [i % 2 == 0 for i in range(n)],
        }
    ).to_csv(root / "data" / "prepared" / "index.csv", index=False)
    pd.DataFrame({"path": paths, "subset": ["train"] * train + ["test"] * val}).to_csv(
        root / "data" / "split" / "index.csv", index=False
    )
    record = model_record(
        kind="custom",
        network="tiny",
        layers=LAYERS,
        input_size=16,
        train_config={"batch_size": 8},
    )
    save_model(root / "data" / "models" / "custom.pt", tiny_network(), record)


def test_the_command_measures_the_val_folder_with_both_statistics(tmp_path):
    make_copy(tmp_path)
    runtime = Runtime(precision=auto_precision(torch.device("cpu")))  # as the command's
    before, _ = load_model(tmp_path / "data" / "models" / "custom.pt")
    data = images(48, seed=1)
    index = pd.DataFrame({"folder": ["train"] * 32 + ["val"] * 16})
    index["imagenet_val"] = [i % 2 == 0 for i in range(48)]
    expected, _, _ = evaluate_model(
        before, data, index, torch.device("cpu"), runtime, VAL_FOLDER_SETS, "check", 16
    )
    out = tmp_path / "bn.json"

    result = main(["--copy", str(tmp_path), "--out", str(out)])

    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["running"]["val_folder"]["accuracy"] == expected["val_folder"]["accuracy"]
    assert result["running"]["val_folder"]["images"] == 16
    assert (result["statistics_images"], result["statistics_batch_size"]) == (32, 8)
    assert result["batch_norm_layers"] == 1
    # The far-off statistics of tiny_network() give another loss once finalised.
    assert result["finalised"]["val_folder"]["loss"] != result["running"]["val_folder"]["loss"]
    assert result["difference"]["val_folder"] == pytest.approx(
        result["finalised"]["val_folder"]["accuracy"] - result["running"]["val_folder"]["accuracy"]
    )
    assert result["command"].endswith(f"finalise_bn --copy {tmp_path} --out {out}")
    # The statistics come from the 32 training images and no others.
    by_hand = tiny_network()
    finalise_batch_norm(
        by_hand, data.subset(np.arange(48) < 32), 8, torch.device("cpu"), runtime, 16
    )
    finalised, _, _ = evaluate_model(
        by_hand, data, index, torch.device("cpu"), runtime, VAL_FOLDER_SETS, "check", 16
    )
    for name, metrics in finalised.items():
        assert result["finalised"][name] == pytest.approx(metrics, rel=1e-6)


def test_a_copy_without_a_trained_model_is_named(tmp_path):
    make_copy(tmp_path)
    (tmp_path / "data" / "models" / "custom.pt").unlink()
    with pytest.raises(UserError, match="custom.pt is missing"):
        main(["--copy", str(tmp_path)])
