"""download: fetch, verify and extract the archive named by data.archive (a fastai name,
a URL, or a local path) into --out; what was fetched and checked into --info."""

from imagenette_repro.data.dataset import layout_problem
from imagenette_repro.data.download import download_dataset
from imagenette_repro.params import load_params
from imagenette_repro.stage_io import run, stage_paths, write_json


def main() -> None:
    paths = stage_paths(__doc__, "out", "info")
    params = load_params()  # every key is checked here, before anything is downloaded
    # The class folders are checked before the extracted folder is moved into place.
    info = download_dataset(params.data.archive, params.data.md5, paths.out, check=layout_problem)
    write_json(paths.info, info)
    print(
        f"{paths.out}: {info['train_images']} train / {info['val_images']} val images "
        f"(md5 {info['md5']}, verified: {info['md5_verified']})"
    )


if __name__ == "__main__":
    run(main)
