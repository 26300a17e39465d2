"""A store decoded larger than the network's side (recipes' train_size) and the validation
image (recipes' val_crop): what the network sees in training, at validation, in the
evaluate stage and in predict, and their checks."""

import json
import os
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from imagenette_repro.data.batches import centre_view, random_resized_crop, to_input
from imagenette_repro.data.dataset import decode_image
from imagenette_repro.inference.evaluation import predict
from imagenette_repro.inference.predict import classify
from imagenette_repro.models.saved import load_model
from imagenette_repro.params import ParamsError, validate
from imagenette_repro.train.loop import fit
from imagenette_repro.train.settings import recipe_training

from .conftest import ROOT, write_jpeg
from .scratch import stage_argv
from .test_fastai_recipe import Recorder
from .test_training import config, tiny_set

STORE, SIDE = 16, 8


def test_the_centre_crop_keeps_the_middle_pixels_unresampled():
    x = torch.rand(2, 3, 10, 10)
    assert torch.equal(centre_view(x, 8, 0.8), x[..., 1:9, 1:9])  # 8 of 10: no resize
    assert centre_view(x) is x and centre_view(x, 10) is x


def test_the_whole_image_is_resized_as_pil_does_in_its_memory_layout():
    images = torch.randint(0, 256, (2, STORE, STORE, 3), dtype=torch.uint8)
    x = to_input(images, torch.device("cpu"))  # channels_last
    view = centre_view(x, SIDE)
    assert view.shape == (2, 3, SIDE, SIDE)
    assert view.is_contiguous(memory_format=torch.channels_last)
    # Antialiased bilinear: PIL's BILINEAR resize (a tent filter over the scale), to rounding.
    pil = np.stack(
        [
            np.asarray(Image.fromarray(image.numpy()).resize((SIDE, SIDE), Image.BILINEAR))
            for image in images
        ]
    )
    expected = torch.from_numpy(pil).permute(0, 3, 1, 2).float() / 255
    assert (view - expected).abs().max() <= 1.5 / 255
    # A centre crop, then resized: the same as resizing the cut-out middle.
    torch.testing.assert_close(centre_view(x, 4, 0.5), centre_view(x[..., 4:12, 4:12], 4))


def test_random_resized_crops_are_taken_from_the_store_at_the_networks_side():
    small = torch.rand(4, 3, SIDE, SIDE)
    doubled = small.repeat_interleave(2, 2).repeat_interleave(2, 3)
    whole = random_resized_crop(
        doubled, torch.Generator().manual_seed(0), 1.0, False, side=SIDE, ratio=(1, 1)
    )
    torch.testing.assert_close(whole, small)  # the whole frame, sampled at 8 px
    crops = random_resized_crop(doubled, torch.Generator().manual_seed(1), 0.2, True, side=SIDE)
    assert crops.shape == (4, 3, SIDE, SIDE) and not torch.allclose(crops, small)
    share = random_resized_crop(
        doubled, torch.Generator().manual_seed(1), 0.2, True, slice(1, 3), SIDE
    )
    assert torch.equal(share, crops[1:3])  # a process's share: the same draws


@pytest.mark.parametrize("reflection", [False, True])
def test_training_sees_the_whole_image_and_validation_its_centre_at_the_side(reflection):
    train, valid = tiny_set(20, 0, STORE), tiny_set(10, 1, STORE)
    cfg = config(batch_size=10, max_epochs=1, augmentation=False, reflection=reflection, side=SIDE)
    cfg.val_crop = 0.5
    model = Recorder(SIDE)
    seen_in_eval = []
    model.register_forward_pre_hook(
        lambda module, args: None if module.training else seen_in_eval.append(args[0])
    )
    result = fit(model, train, valid, cfg, torch.device("cpu"))
    whole = centre_view(to_input(train.images, torch.device("cpu")), SIDE)
    for image in torch.cat(model.seen):
        assert any(
            torch.equal(image, w) or (reflection and torch.equal(image, w.flip(2))) for w in whole
        )
    centres = centre_view(to_input(valid.images, torch.device("cpu")), SIDE, 0.5)
    torch.testing.assert_close(torch.cat(seen_in_eval), centres)
    # The evaluate stage's predict with the same view gives the loop's last validation.
    logits, loss = predict(model, valid, torch.device("cpu"), side=SIDE, crop=0.5)
    accuracy = (logits.argmax(1) == valid.labels).float().mean().item()
    assert accuracy == result.history[-1]["valid/accuracy"]
    assert loss == pytest.approx(result.history[-1]["valid/loss"], rel=1e-6)


def fastai_with(params: dict, **changes) -> dict:
    params["network"] = "fastai_5ep"
    params["recipes"]["fastai_5ep"].update(changes)
    return params


def test_the_recipe_passes_its_side_and_validation_crop_to_training(params):
    for key in ("train_size", "val_crop"):  # a recipe written before the options
        params["recipes"]["fastai_5ep"].pop(key, None)
    written = validate(fastai_with(params)).recipe  # left out: the store's side, whole
    assert (written.train_size, written.val_crop) == (None, 1.0)
    assert "train_size" not in written.model_dump()  # dumps as written before the option
    params["data"]["input_size"] = 160
    cfg = recipe_training(validate(fastai_with(params, train_size=128, val_crop=0.8)), 160)
    assert (cfg.side, cfg.val_crop) == (128, 0.8)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"train_size": 192},
            "'recipes.fastai_5ep.train_size' is 192, larger than the stored images' side "
            "'data.input_size' 160; expected at most that",
        ),
        ({"train_size": 0}, "'recipes.fastai_5ep.train_size' must be"),
        ({"val_crop": 0.0}, "'recipes.fastai_5ep.val_crop' must be in (0, 1], got 0.0"),
        ({"val_crop": 1.2}, "'recipes.fastai_5ep.val_crop' must be in (0, 1], got 1.2"),
    ],
)
def test_a_bad_side_or_crop_is_named(params, changes, message):
    params["data"]["input_size"] = 160
    with pytest.raises(ParamsError, match=re.escape(message)):
        validate(fastai_with(params, **changes))


@pytest.mark.e2e
def test_train_custom_records_the_view_and_predict_uses_it(tmp_path, params):
    rng = np.random.default_rng(0)
    subsets = ["train"] * 40 + ["valid"] * 20
    paths = [f"x/{i}.JPEG" for i in range(len(subsets))]
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "data" / "split").mkdir(parents=True)
    images = rng.integers(0, 256, (len(paths), STORE, STORE, 3), dtype=np.uint8)
    np.save(tmp_path / "data" / "prepared" / "images.npy", images)
    labels = [i % 10 for i in range(len(paths))]
    pd.DataFrame({"path": paths, "label": labels}).to_csv(
        tmp_path / "data" / "prepared" / "index.csv", index=False
    )
    pd.DataFrame({"path": paths, "subset": subsets}).to_csv(
        tmp_path / "data" / "split" / "index.csv", index=False
    )
    fastai_with(params, batch_size=10, stem_stride=2, train_size=SIDE, val_crop=0.75)
    fastai_with(params, augmentation=True, crop_area_min=0.35)
    params["data"]["input_size"] = STORE
    params["train"]["max_epochs"] = 1
    params["runtime"]["device"] = "cpu"
    # fp32: the same arithmetic on every CPU (bf16's kernels differ between CPUs).
    params["runtime"]["precision"] = "fp32"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run(
        stage_argv("train_custom"),
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    model, record = load_model(tmp_path / "data" / "models" / "custom.pt")
    assert (record.input_size, record.image_size, record.val_crop) == (SIDE, STORE, 0.75)
    # The loop's last validation is the record's view of the stored validation images.
    valid = torch.from_numpy(images[40:])
    x = centre_view(to_input(valid, torch.device("cpu")), SIDE, 0.75)
    with torch.inference_mode():
        logits = model(x)
    metrics = json.loads((tmp_path / "metrics" / "train_custom" / "metrics.json").read_text())
    accuracy = (logits.argmax(1) == torch.tensor(labels[40:])).float().mean().item()
    assert accuracy == pytest.approx(metrics["valid"]["accuracy"], abs=1e-9)
    # predict decodes a JPEG at the store's side and shows the network its centre.
    for index in range(3):
        write_jpeg(tmp_path / "images" / f"{index}.jpg", index, size=40)
    files = sorted((tmp_path / "images").glob("*.jpg"))
    decoded = torch.from_numpy(np.stack([decode_image(path, STORE) for path in files]))
    with torch.inference_mode():
        expected = model(centre_view(to_input(decoded, torch.device("cpu")), SIDE, 0.75))
    assert expected.isfinite().all(), metrics
    results = list(classify(model, record, files, top=1))
    # topk, as predict ranks: it breaks ties as argmax need not.
    top_labels = expected.topk(1).indices[:, 0].tolist()
    assert [r["predictions"][0]["label"] for r in results] == top_labels
    probabilities = [r["predictions"][0]["probability"] for r in results]
    assert probabilities == pytest.approx(expected.softmax(1).max(1).values.tolist(), abs=1e-6)
