"""split: the report's 70:30 stratified split of the train folder, plus the official val
folder as a test set; one row per image in data/split/index.csv."""

from pathlib import Path

from imagenette_repro.data import split_dataset
from imagenette_repro.files import replacing
from imagenette_repro.params import load_params
from imagenette_repro.stage import run, write_json

RAW = Path("data/raw/imagenette")
OUT = Path("data/split")


def main() -> None:
    params = load_params()
    index = split_dataset(RAW, params["data"]["val_fraction"], params["seed"])
    OUT.mkdir(parents=True, exist_ok=True)
    with replacing(OUT / "index.csv") as tmp:
        index.to_csv(tmp, index=False)
    counts = index.groupby("subset").size().to_dict()
    unseen = index[index["imagenet_val"]].groupby("subset").size().to_dict()
    write_json(
        OUT / "summary.json",
        {
            "images": {subset: int(counts.get(subset, 0)) for subset in ("train", "valid", "test")},
            "imagenet_val_images": {
                subset: int(unseen.get(subset, 0)) for subset in ("train", "valid", "test")
            },
        },
    )
    print(f"split: {counts} (ImageNet-validation images: {unseen})")


if __name__ == "__main__":
    run(main)
