import hashlib
import math
import tarfile

import numpy as np
import pandas as pd
import pytest
import torch

from imagenette_repro.data.batches import (
    ImageSet,
    augment,
    batches,
    mean_image,
    random_resized_crop,
    to_input,
)
from imagenette_repro.data.classes import WNIDS
from imagenette_repro.data.dataset import DataError, decode_image, split_dataset, write_array_store

from .conftest import ROOT, write_jpeg


@pytest.fixture
def uneven_dataset(tmp_path):
    """Class k has 7 + 3k train images, so rounding differs from class to class."""
    root = tmp_path / "data"
    for k, wnid in enumerate(WNIDS):
        for i in range(7 + 3 * k):
            name = f"ILSVRC2012_val_{k:02d}{i:06d}.JPEG" if i == 0 else f"{wnid}_{i}.JPEG"
            write_jpeg(root / "train" / wnid / name, seed=k * 100 + i, size=8)
        write_jpeg(root / "val" / wnid / f"{wnid}_v.JPEG", seed=9999 + k, size=8)
    return root


def test_split_is_stratified_70_30_without_overlap(uneven_dataset):
    index = split_dataset(uneven_dataset, "train_split", 0.3, seed=1)
    train_folder = index[index["path"].str.startswith("train/")]
    assert set(train_folder["subset"]) == {"train", "valid"}
    assert (index[index["path"].str.startswith("val/")]["subset"] == "test").all()
    assert index["path"].is_unique
    for label, group in train_folder.groupby("label"):
        n_valid = (group["subset"] == "valid").sum()
        assert abs(n_valid - 0.3 * len(group)) <= 1, label  # within one image per class
        assert group["wnid"].iloc[0] == WNIDS[label]


def test_the_report_protocol_trains_on_the_train_folder_and_validates_on_val(uneven_dataset):
    index = split_dataset(uneven_dataset, "val_folder", 0.3, seed=1)
    assert (index.loc[index["folder"] == "train", "subset"] == "train").all()
    assert (index.loc[index["folder"] == "val", "subset"] == "valid").all()
    assert "test" not in set(index["subset"])
    # Neither the seed nor val_fraction moves anything under the report's protocol.
    pd.testing.assert_frame_equal(index, split_dataset(uneven_dataset, "val_folder", 0.5, 7))


def test_protocol_train_split_gives_the_earlier_split_byte_for_byte(tmp_path):
    """The embedded sample split as the split stage wrote it before data.protocol existed
    (seed 42, 30%): the md5 of data/split/index.csv in that run's dvc.lock (commit
    ac0f950)."""
    with tarfile.open(ROOT / "sample" / "imagenette2-sample.tgz") as tar:
        tar.extractall(tmp_path, filter="data")
    (root,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    index = split_dataset(root, "train_split", 0.3, seed=42)
    written = tmp_path / "index.csv"
    index.to_csv(written, index=False)
    assert hashlib.md5(written.read_bytes()).hexdigest() == "88d25b1b3d920664b3ecaa18dd24aa70"
    assert index["subset"].value_counts().to_dict() == {"train": 140, "valid": 60, "test": 60}


def test_split_is_fixed_by_the_seed(uneven_dataset):
    first = split_dataset(uneven_dataset, "train_split", 0.3, seed=1)
    again = split_dataset(uneven_dataset, "train_split", 0.3, seed=1)
    other = split_dataset(uneven_dataset, "train_split", 0.3, seed=2)
    pd.testing.assert_frame_equal(first, again)
    assert not first["subset"].equals(other["subset"])


def test_split_marks_imagenet_validation_images(uneven_dataset):
    index = split_dataset(uneven_dataset, "train_split", 0.3, seed=1)
    marked = index[index["imagenet_val"]]
    assert len(marked) == 10
    assert marked["path"].str.contains("/ILSVRC2012_val_").all()


def test_missing_or_unknown_class_folders_are_named(uneven_dataset):
    (uneven_dataset / "train" / "n99999999").mkdir()
    with pytest.raises(DataError, match="unknown class folder.*n99999999"):
        split_dataset(uneven_dataset, "train_split", 0.3, seed=1)
    (uneven_dataset / "train" / "n99999999").rmdir()
    for file in (uneven_dataset / "val" / WNIDS[3]).iterdir():
        file.unlink()
    with pytest.raises(DataError, match=f"{WNIDS[3]}: class folder has no images"):
        split_dataset(uneven_dataset, "train_split", 0.3, seed=1)


def test_grayscale_images_decode_to_rgb(tmp_path):
    write_jpeg(tmp_path / "gray.JPEG", seed=0, size=20, mode="L")
    array = decode_image(tmp_path / "gray.JPEG", 12)
    assert array.shape == (12, 12, 3) and array.dtype == np.uint8
    assert (array[..., 0] == array[..., 1]).all()


def test_array_store_stops_on_bad_images_and_leaves_nothing(uneven_dataset, tmp_path):
    index = split_dataset(uneven_dataset, "train_split", 0.3, seed=1)
    bad = uneven_dataset / index["path"][5]
    bad.write_bytes(b"not a jpeg at all")
    target = tmp_path / "images.npy"
    with pytest.raises(DataError, match=f"(?s)1 image.*{bad.name}: not an image"):
        write_array_store(uneven_dataset, index, 8, target, skip_bad=False)
    assert not target.exists() and not list(tmp_path.glob("*.tmp*"))
    kept, skipped = write_array_store(uneven_dataset, index, 8, target, skip_bad=True)
    assert len(skipped) == 1 and len(kept) == len(index) - 1
    store = np.load(target)
    assert store.shape == (len(kept), 8, 8, 3)
    assert (store[0] == decode_image(uneven_dataset / kept["path"][0], 8)).all()


def test_batches_cover_every_image_once_in_a_seeded_order():
    data = ImageSet(
        torch.arange(25, dtype=torch.uint8).view(25, 1, 1, 1).expand(25, 2, 2, 3), torch.arange(25)
    )
    seen = [labels for _, labels in batches(data, 10, torch.Generator().manual_seed(3), False)]
    assert sorted(torch.cat(seen).tolist()) == list(range(25))
    dropped = list(batches(data, 10, torch.Generator().manual_seed(3), drop_last=True))
    assert len(dropped) == 2
    again = [labels for _, labels in batches(data, 10, torch.Generator().manual_seed(3), False)]
    assert all(torch.equal(a, b) for a, b in zip(seen, again, strict=True))


def test_augment_without_change_is_identity_and_is_seeded():
    images = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    x = to_input(images, torch.device("cpu"))
    same = augment(x, torch.Generator().manual_seed(0), (1.0, 1.0), 0.0, False)
    assert torch.allclose(same, x, atol=1e-5)
    a = augment(x, torch.Generator().manual_seed(1), (0.9, 1.1), 4.0, True)
    b = augment(x, torch.Generator().manual_seed(1), (0.9, 1.1), 4.0, True)
    assert torch.equal(a, b) and not torch.allclose(a, x)


def test_translation_and_scale_move_pixels_by_the_drawn_amounts():
    # One bright pixel; draws fixed by a known generator state, read back the same way.
    size, translation = 32, 6.0
    x = torch.zeros(1, 1, size, size)
    x[0, 0, 16, 16] = 1.0
    generator = torch.Generator().manual_seed(5)
    draws = torch.rand(1, 5, generator=torch.Generator().manual_seed(5))
    out = augment(x, generator, (1.0, 1.0), translation, False)
    shift_x = (2 * draws[0, 2] - 1) * translation
    shift_y = (2 * draws[0, 3] - 1) * translation
    weights = out[0, 0]
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre_x = (weights * xs).sum() / weights.sum()
    centre_y = (weights * ys).sum() / weights.sum()
    assert centre_x.item() == pytest.approx(16 + shift_x.item(), abs=0.01)
    assert centre_y.item() == pytest.approx(16 + shift_y.item(), abs=0.01)
    # Scale: a centred square grows by the drawn factor in x and y, out of the frame is 0.
    square = torch.zeros(1, 1, size, size)
    square[0, 0, 8:24, 8:24] = 1.0
    draws = torch.rand(1, 5, generator=torch.Generator().manual_seed(9))
    out = augment(square, torch.Generator().manual_seed(9), (0.5, 1.5), 0.0, False)
    sx, sy = 0.5 + draws[0, 0].item(), 0.5 + draws[0, 1].item()
    assert out.sum().item() == pytest.approx(256 * sx * sy, rel=0.05)


def test_random_resized_crop_stays_inside_the_image_at_the_drawn_area():
    size = 32
    ones = torch.ones(64, 1, size, size)
    crops = random_resized_crop(ones, torch.Generator().manual_seed(2), 0.1, True)
    # Every crop lies inside the image: no padding shows (the report's warp pads with 0).
    assert crops.shape == ones.shape and torch.allclose(crops, ones)
    # A white square in the image's top-left quarter fills the output when the draw puts
    # the crop there: the area of the square in each crop follows the drawn crop's size.
    square = torch.zeros(1, 1, size, size)
    square[0, 0, :16, :16] = 1.0
    generator = torch.Generator().manual_seed(4)
    draws = torch.rand(1, 5, generator=torch.Generator().manual_seed(4))
    out = random_resized_crop(square, generator, 0.2, False)
    area = 0.2 + 0.8 * draws[0, 0].item()
    aspect = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * draws[0, 1].item())
    width, height = min(1.0, math.sqrt(area * aspect)), min(1.0, math.sqrt(area / aspect))
    left = (2 * draws[0, 2].item() - 1) * (1 - width) - width  # crop edges in [-1, 1]
    top = (2 * draws[0, 3].item() - 1) * (1 - height) - height
    inside_x = max(0.0, min(0.0, left + 2 * width) - left) / (2 * width)
    inside_y = max(0.0, min(0.0, top + 2 * height) - top) / (2 * height)
    assert out.mean().item() == pytest.approx(inside_x * inside_y, abs=0.05)


def test_random_resized_crop_of_the_whole_image_is_identity_or_mirror_and_is_seeded():
    images = torch.randint(0, 256, (8, 16, 16, 3), dtype=torch.uint8)
    x = to_input(images, torch.device("cpu"))
    whole = random_resized_crop(x, torch.Generator().manual_seed(0), 1.0, True, ratio=(1, 1))
    for image, crop in zip(x, whole, strict=True):
        assert torch.allclose(crop, image, atol=1e-5) or torch.allclose(
            crop, image.flip(-1), atol=1e-5
        )
    assert not all(torch.allclose(c, i, atol=1e-5) for c, i in zip(x, whole, strict=True))
    a = random_resized_crop(x, torch.Generator().manual_seed(1), 0.35, True)
    b = random_resized_crop(x, torch.Generator().manual_seed(1), 0.35, True)
    assert torch.equal(a, b) and not torch.allclose(a, x)
    assert a.is_contiguous(memory_format=torch.channels_last)


def test_mean_image_is_per_pixel():
    images = torch.zeros(2, 4, 4, 3, dtype=torch.uint8)
    images[0, 0, 0, 0] = 255
    mean = mean_image(images)
    assert mean.shape == (3, 4, 4)
    assert mean[0, 0, 0] == pytest.approx(0.5) and mean[1].sum() == 0
