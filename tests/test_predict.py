"""predict: image files and folders of any format PIL opens, classified by a saved model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from imagenette_repro.data.batches import to_input
from imagenette_repro.data.classes import CLASSES
from imagenette_repro.data.dataset import decode_image
from imagenette_repro.inference.predict import classify, main
from imagenette_repro.models.networks import build_custom_network
from imagenette_repro.models.pretrained import imagenet_network, replace_classifier
from imagenette_repro.models.record import save_model
from imagenette_repro.models.saved import load_model

from .conftest import ROOT, model_record, write_jpeg

TINY_LAYERS = [
    "ImageInput, 32x32",
    "Conv, 3x3, 8",
    "Dropout, 0.3",
    "MaxPool, 2x2",
    "FullyConnected, 16",
    "FullyConnected, 10",
]


def save_tiny_custom(path, seed: int = 0):
    """A tiny custom network at 32 px, saved as train_custom saves it."""
    torch.manual_seed(seed)
    model = build_custom_network(TINY_LAYERS, 32, name="tiny").eval()
    model[0].mean.fill_(0.45)  # a "zerocenter" mean image, as train_custom sets it
    record = model_record(kind="custom", network="tiny", layers=TINY_LAYERS, input_size=32)
    save_model(path, model, record)
    return path


def save_tiny_googlenet(path, seed: int = 0, size: int = 32):
    """GoogLeNet with weights 'none', saved as finetune_googlenet saves it. Its random init
    (std 0.01) gives all-equal outputs, so the convolutions get He init: outputs differ."""
    torch.manual_seed(seed)
    model = imagenet_network("googlenet", None)
    replace_classifier(model, "googlenet")
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
    record = model_record(
        kind="googlenet",
        network="googlenet",
        transform_input=model[1].transform_input,
        input_size=size,
        model="googlenet",
        weights="none",
        pretrained=False,
    )
    save_model(path, model.eval(), record)
    return path


def write_images(folder):
    """One image of every kind the brief names, two broken files and a non-image."""
    rng = np.random.default_rng(0)
    write_jpeg(folder / "rgb.jpg", 1, size=50)
    write_jpeg(folder / "sub" / "gray.JPEG", 2, size=36, mode="L")
    Image.fromarray(rng.integers(0, 256, (45, 30, 3), dtype=np.uint8)).convert("CMYK").save(
        folder / "cmyk.jpg"
    )
    (folder / "sub" / "deeper").mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 64, 4), dtype=np.uint8), "RGBA").save(
        folder / "sub" / "deeper" / "rgba.png"
    )
    Image.fromarray(rng.integers(0, 65536, (33, 40), dtype=np.uint16)).save(folder / "sixteen.png")
    assert Image.open(folder / "sixteen.png").mode == "I;16"
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "plain.png")
    (folder / "corrupt.jpg").write_bytes(b"this is not an image")
    (folder / "notes.txt").write_text("not an image suffix: not looked at")
    good = ["cmyk.jpg", "plain.png", "rgb.jpg", "sixteen.png", "sub/deeper/rgba.png"]
    return sorted([*good, "sub/gray.JPEG"]), "corrupt.jpg"


def own_probabilities(model, files, size):
    """The model's probabilities on the images decoded as the prepare stage does."""
    images = torch.from_numpy(np.stack([decode_image(f, size) for f in files]))
    with torch.inference_mode():
        return model(to_input(images, torch.device("cpu"))).softmax(1)


def check_predictions(predictions, probabilities, top):
    assert [p["rank"] for p in predictions] == list(range(1, top + 1))
    values = [p["probability"] for p in predictions]
    assert values == sorted(values, reverse=True)
    assert sum(values) <= 1 + 1e-6
    expected_values, expected_labels = probabilities.topk(top)
    assert [p["label"] for p in predictions] == expected_labels.tolist()
    assert values == pytest.approx(expected_values.tolist(), abs=1e-6)
    for p in predictions:
        assert (p["class_id"], p["english"], p["polish"]) == CLASSES[p["label"]]


def test_folder_of_every_format_json_and_a_corrupt_file(tmp_path):
    model_path = save_tiny_custom(tmp_path / "custom.pt")
    good, corrupt = write_images(tmp_path / "images")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "imagenette_repro.inference.predict", "--model", str(model_path)]
        + ["--top", "3", "--json", "--batch-size", "4", str(tmp_path / "images")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"error: {tmp_path / 'images' / corrupt}: not an image PIL can read" in result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {
        "model",
        "kind",
        "network",
        "input_size",
        "top",
        "images",
        "classified",
        "failed",
    }
    assert (document["kind"], document["input_size"], document["top"]) == ("custom", 32, 3)
    assert (document["classified"], document["failed"]) == (len(good), 1)
    entries = {
        os.path.relpath(entry["path"], tmp_path / "images"): entry for entry in document["images"]
    }
    assert sorted(entries) == sorted([*good, corrupt])  # notes.txt is not an image
    assert entries[corrupt]["predictions"] == []
    assert "not an image PIL can read" in entries[corrupt]["error"]
    model, _ = load_model(model_path)
    probabilities = own_probabilities(model, [tmp_path / "images" / name for name in good], 32)
    for name, row in zip(good, probabilities, strict=True):
        assert set(entries[name]) == {"path", "error", "predictions"}
        assert entries[name]["error"] is None
        assert set(entries[name]["predictions"][0]) == {
            "rank",
            "label",
            "class_id",
            "english",
            "polish",
            "probability",
        }
        check_predictions(entries[name]["predictions"], row, 3)


def test_text_output_names_classes_in_english_and_polish(tmp_path, capsys):
    model_path = save_tiny_custom(tmp_path / "custom.pt")
    write_jpeg(tmp_path / "a.jpg", 1)
    assert main(["--model", str(model_path), "--top", "10", str(tmp_path / "a.jpg")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(tmp_path / "a.jpg")
    assert len(out) == 11
    lines = [re.fullmatch(r"  (\d+)\. +([\d.]+)%  (.+) \((.+)\)", line) for line in out[1:]]
    assert [int(line[1]) for line in lines] == list(range(1, 11))
    assert sorted((line[3], line[4]) for line in lines) == sorted(
        (english, polish) for _, english, polish in CLASSES
    )
    shares = [float(line[2]) for line in lines]
    assert shares == sorted(shares, reverse=True)
    assert sum(shares) == pytest.approx(100, abs=0.01)  # all ten classes


def test_googlenet_predictions_equal_its_own_and_batches_keep_the_order(tmp_path, capsys):
    model_path = save_tiny_googlenet(tmp_path / "googlenet.pt")
    files = [tmp_path / f"{i}.jpg" for i in range(5)]
    for i, file in enumerate(files):
        write_jpeg(file, i, size=48)
    model, record = load_model(model_path)
    forwards = []
    model.register_forward_hook(lambda module, args, out: forwards.append(len(args[0])))
    results = list(classify(model, record, files, top=4, batch_size=2))
    assert forwards == [2, 2, 1]  # batched, not one forward per image
    assert [r["path"] for r in results] == [str(f) for f in files]
    for result, row in zip(results, own_probabilities(model, files, 32), strict=True):
        check_predictions(result["predictions"], row, 4)
    assert main(["--model", str(model_path), "--json", "--top", "4", *map(str, files)]) == 0
    document = json.loads(capsys.readouterr().out)  # all five in one batch this time
    assert document["kind"] == "googlenet"
    for entry, result in zip(document["images"], results, strict=True):
        assert [p["label"] for p in entry["predictions"]] == [
            p["label"] for p in result["predictions"]
        ]
        assert [p["probability"] for p in entry["predictions"]] == pytest.approx(
            [p["probability"] for p in result["predictions"]], abs=1e-6
        )


def test_bad_usage_exits_2_and_missing_images_exit_1(tmp_path, capsys):
    missing = tmp_path / "models" / "custom.pt"
    write_jpeg(tmp_path / "a.jpg", 1)
    assert main(["--model", str(missing), str(tmp_path / "a.jpg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: model file {missing} not found") and err.count("\n") == 1
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["--model", str(tmp_path / "junk.pt"), str(tmp_path / "a.jpg")]) == 2
    assert "junk.pt: not a model saved by the pipeline" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--top", "0", str(tmp_path / "a.jpg")])
    assert exit_info.value.code == 2
    capsys.readouterr()

    model_path = save_tiny_custom(tmp_path / "custom.pt")
    (tmp_path / "empty").mkdir()
    paths = [tmp_path / "nope.jpg", tmp_path / "empty", tmp_path / "a.jpg"]
    assert main(["--model", str(model_path), "--json", *map(str, paths)]) == 1
    captured = capsys.readouterr()
    entries = json.loads(captured.out)["images"]
    assert [e["error"] for e in entries] == [
        "no such file or folder",
        "folder holds no image files",
        None,
    ]
    assert f"error: {tmp_path / 'nope.jpg'}: no such file or folder" in captured.err
