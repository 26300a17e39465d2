"""export: TorchScript and ONNX files that give the trained models' outputs, any batch size."""

from __future__ import annotations

import json
import runpy
import sys

import numpy as np
import onnxruntime
import pytest
import torch

from imagenette_repro.data.batches import to_input
from imagenette_repro.data.dataset import decode_image
from imagenette_repro.inference.predict import main as predict_main
from imagenette_repro.models.export import (
    ExportError,
    compare,
    export_model,
    run_torchscript,
    verify,
)
from imagenette_repro.models.networks import build_timm_network
from imagenette_repro.models.record import save_model
from imagenette_repro.models.saved import load_model

from .conftest import ROOT, model_record, write_jpeg
from .scratch import stage_argv
from .test_predict import save_tiny_custom, save_tiny_googlenet


def run_export_stage(workdir, monkeypatch, capsys, model: str) -> tuple[int, str]:
    """stages/export.py for `model` as DVC runs it (dvc.yaml's cmd of export@<model>, as
    __main__, in the workspace), in this process: its exit code and stderr."""
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "argv", stage_argv(f"export@{model}")[1:])
    try:
        runpy.run_path(str(ROOT / "stages" / "export.py"), run_name="__main__")
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err


def decoded_batch(folder, batch: int, size: int) -> torch.Tensor:
    """Real JPEGs decoded as the prepare stage decodes them, as the models take them."""
    arrays = []
    for seed in range(batch):
        write_jpeg(folder / f"{batch}-{seed}.jpg", 10 * batch + seed, size=47)
        arrays.append(decode_image(folder / f"{batch}-{seed}.jpg", size))
    return to_input(torch.from_numpy(np.stack(arrays)), torch.device("cpu"))


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.* is deprecated:FutureWarning")
@pytest.mark.e2e
def test_stage_writes_both_models_whose_exports_give_the_same_outputs(
    tmp_path, monkeypatch, capsys
):
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    save_tiny_custom(models / "custom.pt")
    save_tiny_googlenet(models / "googlenet.pt")
    for name in ("custom", "googlenet"):
        code, err = run_export_stage(tmp_path, monkeypatch, capsys, name)
        assert code == 0, err
        out = tmp_path / "data" / "exported" / name
        assert sorted(p.name for p in out.iterdir()) == [
            f"{name}.onnx",
            f"{name}.torchscript.pt",
            "manifest.json",
        ]
        model, record = load_model(models / f"{name}.pt")
        info = json.loads((out / "manifest.json").read_text())
        assert info["model"] == name and info["source"] == f"data/models/{name}.pt"
        assert info["input"]["shape"] == ["batch", 3, 32, 32]
        assert info["classes"][0] == {
            "label": 0,
            "id": "n01440764",
            "english": "tench",
            "polish": "ryba",
        }
        assert info["onnx"]["exporter"] == "dynamo" and "fallback_reason" not in info["onnx"]
        extra = {"meta.json": ""}
        scripted = torch.jit.load(str(out / f"{name}.torchscript.pt"), _extra_files=extra)
        assert json.loads(extra["meta.json"])["classes"] == info["classes"]
        session = onnxruntime.InferenceSession(str(out / f"{name}.onnx"))
        assert isinstance(session.get_inputs()[0].shape[0], str)  # a symbolic batch size
        onnx_meta = json.loads(session.get_modelmeta().custom_metadata_map["imagenette"])
        assert onnx_meta["classes"] == info["classes"]
        for batch in (1, 3):
            images = decoded_batch(tmp_path / "images", batch, 32)
            # (Unoptimised TorchScript: the optimising executor's first runs take seconds.)
            with torch.inference_mode(), torch.jit.optimized_execution(False):
                expected = model(images).softmax(1)
                from_script = scripted(images).softmax(1)
            (logits,) = session.run(["logits"], {"images": images.numpy()})
            from_onnx = torch.from_numpy(logits).softmax(1)
            for got in (from_script, from_onnx):
                assert got.shape == (batch, 10)
                assert torch.allclose(got, expected, atol=1e-5, rtol=0)
                assert torch.equal(got.argmax(1), expected.argmax(1))
            assert expected.max(1).values.min() > expected.median(1).values.max()  # not ties


@pytest.mark.parametrize("present", [[], ["custom.pt"]])
def test_stage_refuses_a_missing_model_with_one_line_naming_it(
    tmp_path, monkeypatch, capsys, present
):
    (tmp_path / "data" / "models").mkdir(parents=True)
    for name in present:
        save_tiny_custom(tmp_path / "data" / "models" / name)
    stage = {"custom": "train_custom", "googlenet": "finetune_googlenet"}
    for name in ("custom", "googlenet"):
        code, err = run_export_stage(tmp_path, monkeypatch, capsys, name)
        if f"{name}.pt" in present:
            assert code == 0, err
            continue
        assert code == 2
        assert err.startswith("error: ") and err.count("\n") == 1
        assert f"data/models/{name}.pt: missing (made by stage {stage[name]}" in err
        assert not (tmp_path / "data" / "exported" / name).exists()


def test_legacy_exporter_and_a_file_that_does_not_match_is_caught(tmp_path):
    model, record = load_model(save_tiny_custom(tmp_path / "custom.pt", seed=0))
    result = export_model(model, record, tmp_path / "out", "custom", exporter="legacy")
    assert result["onnx"]["exporter"] == "legacy"
    assert result["onnx"]["max_probability_difference"] < 1e-5
    other, _ = load_model(save_tiny_custom(tmp_path / "other.pt", seed=1))
    with pytest.raises(ExportError, match="custom.torchscript.pt: does not match the original"):
        verify(other, record, tmp_path / "out" / "custom.torchscript.pt", run_torchscript)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "custom.onnx",
        "custom.torchscript.pt",
    ]


def test_compare_allows_ties_and_rounding_but_not_another_class():
    ties = torch.zeros(2, 10)
    assert compare(ties, ties + torch.randn(2, 10) * 1e-7) is None  # any of ten equal ones
    clear = torch.eye(10)[:2] * 5
    assert compare(clear, clear + 1e-6) is None
    # Probabilities within 0.04, but the top class is another by more than that.
    expected = torch.tensor([[0.40, 0.35, 0.25]]).log()
    assert "top class differs" in compare(expected, torch.tensor([[0.37, 0.38, 0.25]]).log(), 0.04)
    assert compare(expected, torch.tensor([[0.39, 0.36, 0.25]]).log(), 0.04) is None
    assert "probabilities differ" in compare(clear, clear.flip(0))
    assert "output shape" in compare(clear, clear[:1])


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.* is deprecated:FutureWarning")
def test_a_recipe_network_exports_and_predicts_like_the_report_networks(
    tmp_path, monkeypatch, capsys, params
):
    """A recipe's timm network (the repository's 128-px recipe's family, saved as
    train_custom saves it, at 32 px) goes through the same export stage and predict."""
    recipe = params["recipes"]["imagenette_128"]
    torch.manual_seed(0)
    model = build_timm_network("resnet10t", recipe["stem_stride"]).eval()
    for module in model.modules():  # running statistics unlike BatchNorm's defaults
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    record = model_record(
        kind="timm",
        network="imagenette_128",
        input_size=32,
        timm_model="resnet10t",
        stem_stride=recipe["stem_stride"],
        recipe={**recipe, "model": "resnet10t"},
    )
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    save_model(models / "custom.pt", model, record)
    code, err = run_export_stage(tmp_path, monkeypatch, capsys, "custom")
    assert code == 0, err
    out = tmp_path / "data" / "exported" / "custom"
    info = json.loads((out / "manifest.json").read_text())
    assert info["input"]["shape"] == ["batch", 3, 32, 32]
    session = onnxruntime.InferenceSession(str(out / "custom.onnx"))
    images = decoded_batch(tmp_path / "images", 4, 32)
    with torch.inference_mode():
        expected = model(images).softmax(1)
    (logits,) = session.run(["logits"], {"images": images.numpy()})
    assert torch.allclose(torch.from_numpy(logits).softmax(1), expected, atol=1e-5, rtol=0)
    files = sorted((tmp_path / "images").glob("*.jpg"))
    assert predict_main(["--model", str(models / "custom.pt"), "--json", *map(str, files)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["kind"], document["network"]) == ("timm", "imagenette_128")
    assert [image["predictions"][0]["label"] for image in document["images"]] == (
        expected.argmax(1).tolist()
    )
