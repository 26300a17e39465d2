"""split: which images train and which validate, by data.protocol (the report's: the train
folder trains, the val folder validates; or a seeded 70:30 split of the train folder with
the val folder kept as a test set); one row per image in --out/index.csv."""

from imagenette_repro.data.dataset import SUBSETS, split_dataset
from imagenette_repro.files import replacing
from imagenette_repro.params import load_params
from imagenette_repro.stage_io import run, stage_paths, write_json


def main() -> None:
    paths = stage_paths(__doc__, "raw", "out")
    params = load_params()
    data = params.data
    index = split_dataset(paths.raw, data.protocol, data.val_fraction, params.seed)
    paths.out.mkdir(parents=True, exist_ok=True)
    with replacing(paths.out / "index.csv") as tmp:
        index.to_csv(tmp, index=False)
    counts = index.groupby("subset").size().to_dict()
    unseen = index[index["imagenet_val"]].groupby("subset").size().to_dict()
    write_json(
        paths.out / "summary.json",
        {
            "protocol": data.protocol,
            "val_fraction": data.val_fraction if data.protocol == "train_split" else None,
            "folders": {k: int(v) for k, v in index.groupby("folder").size().items()},
            "images": {subset: int(counts.get(subset, 0)) for subset in SUBSETS},
            "imagenet_val_images": {subset: int(unseen.get(subset, 0)) for subset in SUBSETS},
        },
    )
    print(f"split ({data.protocol}): {counts} (ImageNet-validation images: {unseen})")


if __name__ == "__main__":
    run(main)
